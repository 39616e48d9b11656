"""bench --end-to-end: from image bytes to a label, each stage timed, per placement of the
preprocessing. No peer measures this; at about 2-3 ms per INT8 image on this class of CPU the
preprocessing may cost as much as the network.

Each image, held as its file's bytes in memory, goes: decode (Pillow) -> preprocess -> inference
-> softmax and top-5. Placements of the preprocessing:

* ``host``: Pillow resizes the short side and center-crops, NumPy scales and normalizes to
  float32 NCHW; the engine (any backend) runs the model as exported.
* ``onnx-graph``: Pillow resizes and crops (uint8 stays uint8); the rest (cast, NHWC to NCHW,
  mean and scale) is prepended to the ONNX graph itself, run by ONNX Runtime: a model file that
  takes uint8 pixels, for any runtime.
* ``openvino-ppp``: Pillow resizes and crops; OpenVINO's PrePostProcessor does the rest inside
  the compiled model (uint8 NHWC in; convert, layout, mean and scale as graph operations).

Resizing stays on the host in every placement: the short-side resize and center crop depend on
each image's size, which a fixed graph input does not have.

The stages are timed back to back around each call: their sum is the whole within the timer's
resolution (the test holds it within 5%).
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np

from alexnet_deploy.errors import UsageError
from alexnet_deploy.predict import STAGES, softmax  # the same stages as predict's


def _payloads(inputs: str) -> list[tuple[str, bytes]]:
    from alexnet_deploy.calib.sources import shipped_images
    from alexnet_deploy.predict import image_files

    folder = shipped_images() if inputs == "shipped" else Path(inputs)
    files, missing = image_files([folder])
    if missing:
        raise UsageError(f"--inputs {inputs}: {missing[0].error}", hint="pass a folder of images")
    return [(p.name, p.read_bytes()) for p in files]


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


def with_graph_preprocessing(artifact: Path, pre, out: Path) -> Path:
    """A copy of the ONNX model that takes uint8 NHWC pixels (resized and cropped): Cast,
    Transpose to NCHW, subtract 255*mean and divide by 255*std, prepended to the graph."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(artifact))
    graph = model.graph
    old = graph.input[0]
    size = pre.crop_size
    pixels = helper.make_tensor_value_info("pixels_u8", TensorProto.UINT8, ["batch", size, size, 3])
    mean = np.asarray([255.0 * m for m in pre.mean], np.float32).reshape(1, 3, 1, 1)
    std = np.asarray([255.0 * s for s in pre.std], np.float32).reshape(1, 3, 1, 1)
    graph.initializer.extend(
        [numpy_helper.from_array(mean, "pre_mean255"), numpy_helper.from_array(std, "pre_std255")]
    )
    nodes = [
        helper.make_node("Cast", ["pixels_u8"], ["pre_f32"], to=TensorProto.FLOAT),
        helper.make_node("Transpose", ["pre_f32"], ["pre_nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Sub", ["pre_nchw", "pre_mean255"], ["pre_centered"]),
        helper.make_node("Div", ["pre_centered", "pre_std255"], [old.name]),
    ]
    graph.input.remove(old)
    graph.input.insert(0, pixels)
    for node in reversed(nodes):
        graph.node.insert(0, node)
    onnx.checker.check_model(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
    return out


def graph_infer(path: Path):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda batch: session.run(None, {"pixels_u8": batch})[0]


def _top5(logits: np.ndarray) -> np.ndarray:
    """Softmax and the five most likely classes: the postprocessing a caller does."""
    return np.argsort(-softmax(logits))[:5]


def _measure(payloads, decode_pre, infer, min_seconds: float, max_seconds: float) -> dict:
    """Every image in turn until ``min_seconds`` have passed (at least one pass over them)."""
    from alexnet_deploy.calib.images import load_rgb

    clock = time.perf_counter
    totals = dict.fromkeys(STAGES, 0.0)
    count, start = 0, clock()
    while True:
        for _name, payload in payloads:
            t0 = clock()
            image = load_rgb(io.BytesIO(payload))
            t1 = clock()
            batch = decode_pre(image)
            t2 = clock()
            logits = np.asarray(infer(batch))[0]
            t3 = clock()
            _top5(logits)
            t4 = clock()
            for stage, seconds in zip(STAGES, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
                totals[stage] += seconds
            count += 1
        elapsed = clock() - start
        if elapsed >= min_seconds or elapsed >= max_seconds:
            break
    return {"images": count, "wall_seconds": elapsed, **{f"{s}_s": totals[s] for s in STAGES}}


def end_to_end_rows(
    model: Path, cases: list[tuple[str, str]], inputs: str, work_dir: Path, *,
    min_seconds: float = 1.0, max_seconds: float = 6.0, progress=lambda m: None,
) -> list[dict]:  # fmt: skip
    """One row per (backend, precision) and placement: end-to-end images/s and each stage's
    share of the time."""
    import tempfile

    from alexnet_deploy.artifact import read_artifact
    from alexnet_deploy.calib.images import preprocess, resize_crop
    from alexnet_deploy.engines.build import build_engine, resolve_artifact
    from alexnet_deploy.engines.options import BuildOptions
    from alexnet_deploy.engines.registry import get_backend

    pre = read_artifact(model).preprocessing()
    if pre is None:
        raise UsageError(f"{model} does not say how its images are preprocessed")
    payloads = _payloads(inputs)
    rows = []
    for backend, precision in cases:
        progress(f"end to end: {backend} {precision}, host preprocessing")
        engine, _ = build_engine(model, backend, BuildOptions(precision=precision), work_dir)
        with get_backend(backend).runner(engine) as runner:
            measured = _measure(
                payloads, lambda img: preprocess(img, pre)[None], runner.infer,
                min_seconds, max_seconds,
            )  # fmt: skip
        rows.append(_row(backend, precision, "host", measured))
        if backend == "ort":
            progress(f"end to end: {backend} {precision}, preprocessing in the ONNX graph")
            artifact = resolve_artifact(model, precision, "ort", "qdq")
            with tempfile.TemporaryDirectory(dir=work_dir) as scratch:
                path = with_graph_preprocessing(artifact, pre, Path(scratch) / "pre.onnx")
                measured = _measure(
                    payloads, lambda img: resize_crop(img, pre)[None], graph_infer(path),
                    min_seconds, max_seconds,
                )  # fmt: skip
            rows.append(_row(backend, precision, "onnx-graph", measured))
        if backend == "openvino" and get_backend("openvino").capability().available:
            progress(f"end to end: {backend} {precision}, preprocessing in OpenVINO's PPP")
            artifact = resolve_artifact(model, precision, "openvino", "qdq")
            infer = ppp_infer(artifact, pre, precision)
            measured = _measure(
                payloads, lambda img: resize_crop(img, pre)[None], infer, min_seconds, max_seconds
            )
            rows.append(_row(backend, precision, "openvino-ppp", measured))
    return rows


def _row(backend: str, precision: str, placement: str, m: dict) -> dict:
    stages = sum(m[f"{s}_s"] for s in STAGES)
    return {
        "backend": backend,
        "precision": precision,
        "placement": placement,
        "images": m["images"],
        "images_per_s": m["images"] / m["wall_seconds"],
        "ms_per_image": 1e3 * m["wall_seconds"] / m["images"],
        **{f"{s}_pct": 100 * m[f"{s}_s"] / stages for s in STAGES},
        "stages_over_wall_pct": 100 * stages / m["wall_seconds"],
    }


def end_to_end_frame(rows: list[dict]):
    """The table for people: images/s end to end and each stage's share, rounded."""
    import polars as pl

    return pl.DataFrame(
        [
            {
                "backend": r["backend"],
                "precision": r["precision"],
                "preprocessing": r["placement"],
                "images/s": round(r["images_per_s"], 1),
                "ms/image": round(r["ms_per_image"], 2),
                **{f"{s} %": round(r[f"{s}_pct"], 1) for s in STAGES},
            }
            for r in rows
        ]
    )


def write_end_to_end(rows: list[dict], out_dir: Path, meta: dict) -> dict[str, Path]:
    """end-to-end.json (rows and how they were measured), .csv and .md, written atomically."""
    from alexnet_deploy.fileio import atomic_path, write_json_atomic, write_text_atomic
    from alexnet_deploy.render import TableFormat, frame_as_text

    out_dir = Path(out_dir)
    frame = end_to_end_frame(rows)
    paths = {"json": write_json_atomic(out_dir / "end-to-end.json", {**meta, "rows": rows})}
    with atomic_path(out_dir / "end-to-end.csv") as tmp:
        frame.write_csv(tmp)
    paths["csv"] = out_dir / "end-to-end.csv"
    text = (
        "# alexnet-deploy bench --end-to-end\n\n"
        + "".join(f"- {k}: {v}\n" for k, v in meta.items())
        + "\nEach image from its file's bytes to its top-5: the share of each stage in the time "
        "per image.\n\n" + frame_as_text(frame, TableFormat.md)
    )
    paths["md"] = write_text_atomic(out_dir / "end-to-end.md", text)
    return paths
