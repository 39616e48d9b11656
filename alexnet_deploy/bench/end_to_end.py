"""bench --end-to-end: from image bytes to a label, each stage timed, per placement of the
preprocessing. No peer measures this; at about 2-3 ms per INT8 image on this class of CPU the
preprocessing may cost as much as the network.

Each image, held as its file's bytes in memory, goes: decode -> preprocess -> inference ->
softmax and top-5. Placements of the preprocessing:

* ``host``: Pillow decodes, resizes the short side and center-crops, NumPy scales and
  normalizes to float32 NCHW; the engine (any backend) runs the model as exported.
* ``host-opencv`` (when ``opencv-python-headless`` is installed: the ``opencv`` extra): the
  same on the host with OpenCV's decode and resize. Pillow-SIMD, the other fast host library,
  is not on the package registry this project installs from.
* ``onnx-graph``: Pillow resizes and crops (uint8 stays uint8); the rest (cast, NHWC to NCHW,
  mean and scale) is prepended to the ONNX graph itself, run by ONNX Runtime.
* ``onnx-graph-resize``: Pillow only decodes; the resize, crop and the rest are in the graph
  (the model ``export --preprocess`` writes: uint8 NHWC of any size in; exporter/pixels.py).
* ``openvino-ppp``: Pillow resizes and crops; OpenVINO's PrePostProcessor does the rest inside
  the compiled model (uint8 NHWC in; convert, layout, mean and scale as graph operations).

Each row says how often its top-1 class agrees with the ``host`` row's on the same images:
moving the resize changes pixels by up to a level or so, which can flip a close call.

The stages are timed back to back around each call: their sum is the whole within the timer's
resolution (the test holds it within 5%).
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alexnet_deploy.bench.host_opencv import opencv_available, opencv_decode, opencv_preprocess
from alexnet_deploy.bench.records import EndToEndRow, NotMeasured
from alexnet_deploy.cases import Case
from alexnet_deploy.errors import AlexnetDeployError, UsageError
from alexnet_deploy.predict import (  # the same stages and checks as predict's
    STAGES,
    declared_preprocessing,
    softmax,
)


def _payloads(inputs: str, pre) -> list[tuple[str, bytes]]:
    """Each image's bytes, its size checked from its header first (every placement below
    decodes it: none may take more than the limits allow)."""
    from alexnet_deploy.calib.images import check_header
    from alexnet_deploy.calib.sources import shipped_images
    from alexnet_deploy.predict import image_files

    folder = shipped_images() if inputs == "shipped" else Path(inputs)
    files, missing = image_files([folder])
    if missing:
        raise UsageError(f"--inputs {inputs}: {missing[0].error}", hint="pass a folder of images")
    payloads = [(p, p.read_bytes()) for p in files]
    for path, payload in payloads:
        try:
            check_header(io.BytesIO(payload), pre)
        except AlexnetDeployError as err:
            raise AlexnetDeployError(f"--inputs {path}: {err.message}", hint=err.hint) from None
        except OSError as err:  # Pillow's UnidentifiedImageError, a truncated header
            raise UsageError(f"--inputs {path} cannot be decoded ({err})") from None
    return [(p.name, payload) for p, payload in payloads]


def ppp_infer(artifact: Path, pre, precision: str = "fp32"):
    """An infer callable (uint8 NHWC batch -> logits) over the artifact compiled by OpenVINO
    with the conversion, layout change and normalization inside the model, and the compile
    settings of this tool's OpenVINO engine (so the placement is the only difference: left to
    itself OpenVINO would run float work in bf16 on a CPU that has it)."""
    import openvino as ov
    from openvino.preprocess import PrePostProcessor

    from alexnet_deploy.engines.openvino import DEVICE, compile_config
    from alexnet_deploy.engines.options import BuildOptions

    core = ov.Core()
    model = core.read_model(str(artifact))
    ppp = PrePostProcessor(model)
    ppp.input().tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC"))
    ppp.input().model().set_layout(ov.Layout("NCHW"))
    ppp.input().preprocess().convert_element_type(ov.Type.f32).mean(
        [255.0 * m for m in pre.mean]
    ).scale([255.0 * s for s in pre.std])
    config = compile_config(
        BuildOptions(precision=precision), core.get_property(DEVICE, "OPTIMIZATION_CAPABILITIES")
    )
    compiled = core.compile_model(ppp.build(), DEVICE, config)
    request = compiled.create_infer_request()
    return lambda batch: request.infer({0: batch})[0]


def pillow_decode(payload: bytes):
    from alexnet_deploy.calib.images import load_rgb

    return load_rgb(io.BytesIO(payload))


def _top5(logits: np.ndarray) -> np.ndarray:
    """Softmax and the five most likely classes: the postprocessing a caller does."""
    return np.argsort(-softmax(logits))[:5]


@dataclass(frozen=True)
class _Timed:
    images: int
    wall_seconds: float
    top1: list[int]  # each image's top-1 class on the first pass
    stage_seconds: dict[str, float]  # per stage of STAGES, summed over every image


def _measure(payloads, decode, prepare, infer, min_seconds: float, max_seconds: float) -> _Timed:
    """Every image in turn until ``min_seconds`` have passed (at least one pass over them);
    the top-1 class of each image on the first pass (to compare placements)."""
    clock = time.perf_counter
    totals = dict.fromkeys(STAGES, 0.0)
    count, start, top1 = 0, clock(), []
    while True:
        for _name, payload in payloads:
            t0 = clock()
            image = decode(payload)
            t1 = clock()
            batch = prepare(image)
            t2 = clock()
            logits = np.asarray(infer(batch))[0]
            t3 = clock()
            best = _top5(logits)
            t4 = clock()
            for stage, seconds in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                totals[stage] += seconds
            if len(top1) < len(payloads):
                top1.append(int(best[0]))
            count += 1
        elapsed = clock() - start
        if elapsed >= min_seconds or elapsed >= max_seconds:
            break
    return _Timed(count, elapsed, top1, totals)


# the placements that move the preprocessing into the model, per backend that runs them
GRAPH_PLACEMENTS = {"ort": ("onnx-graph", "onnx-graph-resize"), "openvino": ("openvino-ppp",)}


def left_out_placements(info, pre, backends) -> list[NotMeasured]:
    """The in-graph placements ``backends`` would have that this model cannot, with why: a
    card beyond what they reproduce (BGR, another scale, filter or crop: all of them), or an
    opset below the graph resize's (onnx-graph-resize). The host placements are measured."""
    from alexnet_deploy import constants as C
    from alexnet_deploy.engines.registry import get_backend

    names = [
        name
        for backend in dict.fromkeys(backends)
        if backend != "openvino" or get_backend(backend).capability().available
        for name in GRAPH_PLACEMENTS.get(backend, ())
    ]
    if pre.beyond_pixel_graph:
        why = (
            "it reproduces center crop, bilinear, RGB and scale 1/255 only; this model's card "
            f"has {', '.join(pre.beyond_pixel_graph)} (the host placements are measured)"
        )
        return [NotMeasured(name, why) for name in names]
    if info.opset < C.PIXEL_GRAPH_MIN_OPSET and "onnx-graph-resize" in names:
        why = (
            f"resizing in the graph needs opset {C.PIXEL_GRAPH_MIN_OPSET} (Resize with antialias); this "
            f"model has opset {info.opset} (the other placements are measured)"
        )
        return [NotMeasured("onnx-graph-resize", why)]
    return []


def _placements(backend: str, precision: str, model: Path, pre, scratch: Path, skip=()):
    """(name, decode, prepare, infer factory) for each placement this case can have beyond
    ``host``, those in ``skip`` (:func:`left_out_placements`) left out. The infer factory is
    called only when the placement is measured."""
    from alexnet_deploy.calib.images import resize_crop
    from alexnet_deploy.engines.build import resolve_artifact
    from alexnet_deploy.engines.registry import get_backend
    from alexnet_deploy.exporter.pixels import pixel_session, write_with_pixel_input

    if backend == "ort":
        artifact = resolve_artifact(model, precision, "ort", "qdq")

        def graph(resize: bool):
            out = scratch / f"{precision}-{'resize' if resize else 'crop'}.onnx"
            return lambda: pixel_session(write_with_pixel_input(artifact, pre, out, resize=resize))

        if "onnx-graph" not in skip:
            yield "onnx-graph", pillow_decode, lambda img: resize_crop(img, pre)[None], graph(False)
        if "onnx-graph-resize" not in skip:
            yield "onnx-graph-resize", pillow_decode, lambda img: np.asarray(img)[None], graph(True)
    openvino = backend == "openvino" and get_backend("openvino").capability().available
    if openvino and "openvino-ppp" not in skip:
        artifact = resolve_artifact(model, precision, "openvino", "qdq")
        yield (
            "openvino-ppp",
            pillow_decode,
            lambda img: resize_crop(img, pre)[None],
            lambda: ppp_infer(artifact, pre, precision),
        )


def end_to_end_rows(
    model: Path, cases: list[tuple[str, str]], inputs: str, work_dir: Path, *,
    min_seconds: float = 1.0, max_seconds: float = 6.0, progress=lambda m: None, skip=(),
) -> list[EndToEndRow]:  # fmt: skip
    """One row per (backend, precision) and placement (but those in ``skip``): end-to-end
    images/s, each stage's share of the time, and how often its top-1 agrees with the host
    placement's."""
    import tempfile

    from alexnet_deploy.calib.images import preprocess
    from alexnet_deploy.engines.build import build_engine
    from alexnet_deploy.engines.options import BuildOptions
    from alexnet_deploy.engines.registry import get_backend
    from alexnet_deploy.onnx_model import read_artifact

    pre = declared_preprocessing(read_artifact(model))
    payloads = _payloads(inputs, pre)
    rows = []
    for backend, precision in cases:
        progress(f"end to end: {backend} {precision}, host preprocessing")
        engine, _ = build_engine(model, backend, BuildOptions(precision=precision), work_dir)
        with get_backend(backend).runner(engine) as runner:
            host = _measure(
                payloads, pillow_decode, lambda img: preprocess(img, pre)[None], runner.infer,
                min_seconds, max_seconds,
            )  # fmt: skip
            rows.append(_row(backend, precision, "host", host, host.top1))
            if opencv_available():
                progress(f"end to end: {backend} {precision}, host preprocessing with OpenCV")
                measured = _measure(
                    payloads, opencv_decode, lambda px: opencv_preprocess(px, pre), runner.infer,
                    min_seconds, max_seconds,
                )  # fmt: skip
                rows.append(_row(backend, precision, "host-opencv", measured, host.top1))
        with tempfile.TemporaryDirectory(dir=work_dir) as scratch:
            for name, decode, prepare, make_infer in _placements(
                backend, precision, model, pre, Path(scratch), skip
            ):
                progress(f"end to end: {backend} {precision}, preprocessing: {name}")
                measured = _measure(
                    payloads, decode, prepare, make_infer(), min_seconds, max_seconds
                )
                rows.append(_row(backend, precision, name, measured, host.top1))
    return rows


def _row(
    backend: str, precision: str, placement: str, m: _Timed, host_top1: list[int]
) -> EndToEndRow:
    stages = sum(m.stage_seconds.values())
    agree = sum(a == b for a, b in zip(m.top1, host_top1, strict=True))
    return EndToEndRow(
        Case(backend, precision, 1, "latency"),
        placement,
        images=m.images,
        images_per_s=m.images / m.wall_seconds,
        ms_per_image=1e3 * m.wall_seconds / m.images,
        stage_pct={s: 100 * m.stage_seconds[s] / stages for s in STAGES},
        stages_over_wall_pct=100 * stages / m.wall_seconds,
        top1_agrees_with_host_pct=100 * agree / len(host_top1),
    )


def end_to_end_frame(rows: list[EndToEndRow]):
    """The table for people: images/s end to end and each stage's share, rounded."""
    import polars as pl

    return pl.DataFrame(
        [
            {
                "backend": r.case.backend,
                "precision": r.case.precision,
                "preprocessing": r.placement,
                "images/s": round(r.images_per_s, 1),
                "ms/image": round(r.ms_per_image, 2),
                **{f"{s} %": round(share, 1) for s, share in r.stage_pct.items()},
                "top-1 as host %": round(r.top1_agrees_with_host_pct, 1),
            }
            for r in rows
        ]
    )


def write_end_to_end(
    rows: list[EndToEndRow], out_dir: Path, meta: dict, not_measured: list[NotMeasured] = ()
) -> dict[str, Path]:
    """end-to-end.json (rows, how they were measured, the placements left out and why), .csv
    and .md, written atomically."""
    from alexnet_deploy.fileio import atomic_path, write_json_atomic, write_text_atomic
    from alexnet_deploy.render import TableFormat, frame_as_text

    out_dir = Path(out_dir)
    frame = end_to_end_frame(rows)
    columns = [r.to_columns() for r in rows]
    left_out = [{"what": n.what, "reason": n.reason} for n in not_measured]
    paths = {
        "json": write_json_atomic(
            out_dir / "end-to-end.json", {**meta, "rows": columns, "not_measured": left_out}
        )
    }
    with atomic_path(out_dir / "end-to-end.csv") as tmp:
        frame.write_csv(tmp)
    paths["csv"] = out_dir / "end-to-end.csv"
    left_out_text = "".join(f"- {n.line()}\n" for n in not_measured)
    text = (
        f"# alexnet-deploy bench --end-to-end of {meta.get('model_name', 'the model')}\n\n"
        + "".join(f"- {k}: {v}\n" for k, v in meta.items())
        + "\nEach image from its file's bytes to its top-5: the share of each stage in the time "
        "per image.\n\n"
        + frame_as_text(frame, TableFormat.md)
        + (f"\n\n## Not measured\n\n{left_out_text}" if left_out_text else "")
    )
    paths["md"] = write_text_atomic(out_dir / "end-to-end.md", text)
    return paths


def end_to_end_report(
    model: Path,
    backends: tuple[str, ...],
    precisions: tuple[str, ...],
    inputs: str,
    work_dir: Path,
    out_dir: Path,
    *,
    min_seconds: float,
    max_seconds: float,
    progress=lambda m: None,
) -> tuple[list[EndToEndRow], dict[str, Path], list[NotMeasured]]:
    """The stage: each of ``backends`` (those a bench backend names; none: ONNX Runtime and
    OpenVINO where available) at each precision, measured from image bytes to label; the
    table written to ``out_dir`` with the machine, model and images it was measured on, and
    the placements left out for this model, with why (also returned)."""
    from alexnet_deploy.bench.fingerprint import environment
    from alexnet_deploy.engines.registry import BACKEND_NAMES, get_backend
    from alexnet_deploy.onnx_model import read_artifact

    chosen = [b for b in backends if b in BACKEND_NAMES] or [
        b for b in ("ort", "openvino") if get_backend(b).capability().available
    ]
    cases = [(b, p) for b in chosen for p in precisions]
    info = read_artifact(model)
    left_out = left_out_placements(info, declared_preprocessing(info), chosen)
    rows = end_to_end_rows(
        model,
        cases,
        inputs,
        work_dir,
        min_seconds=min_seconds,
        max_seconds=max_seconds,
        progress=progress,
        skip={n.what for n in left_out},
    )
    env = environment()
    meta = {
        "machine": f"{env['cpu']} ({env.get('cpu_isa')}), {env['logical_cores']} logical cores",
        "model": str(model),
        "model_name": info.model_name,
        "inputs": inputs,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return rows, write_end_to_end(rows, out_dir, meta, left_out), left_out
