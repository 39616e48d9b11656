"""The bench stage: every engine of the matrix on a given model's artifacts, each row paired
with its fidelity, and the reports. Engines are cached by content in the work directory. The
artifacts it measures are made before it by the orchestration layer (alexnet_deploy/workflow.py)."""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from alexnet_deploy import constants as C
from alexnet_deploy.artifacts import Stage, StageStatus, WorkDir
from alexnet_deploy.bench.config import BenchConfig
from alexnet_deploy.bench.fingerprint import comparable_key, environment
from alexnet_deploy.bench.records import BenchResult, BenchRow
from alexnet_deploy.bench.report import SCHEMA, publish_reports
from alexnet_deploy.bench.run import FidelityProbe, run_matrix
from alexnet_deploy.cases import Case
from alexnet_deploy.fileio import sha256_file
from alexnet_deploy.locking import require_held
from alexnet_deploy.onnx_model import read_artifact
from alexnet_deploy.passwords import masked_argv
from alexnet_deploy.progress import Progress, silent

if TYPE_CHECKING:
    from alexnet_deploy.serve.triton_client import ServedModel


def fidelity_probe(
    model: Path, data: str, seed: int, max_top1_drop: float = C.DEFAULT_MAX_TOP1_DROP
) -> FidelityProbe:
    """The fixed fidelity inputs (real images) and their FP32 logits from ONNX Runtime; the
    budget bf16 rows are held to, where the figures mean something (calib/stage.py's policy)."""
    from alexnet_deploy.calib.data import images_for_model
    from alexnet_deploy.calib.fidelity import ort_logits
    from alexnet_deploy.calib.stage import budget_policy

    info = read_artifact(model)
    loaded = images_for_model(
        info, data, count=C.BENCH_FIDELITY_SAMPLES, seed=seed, what="calibration data"
    )
    images = loaded.eval.images
    reference = ort_logits(model, info.input.name, images, batch_size=info.batch_for(8))
    label = (
        f"{len(images)} {'synthetic' if loaded.synthetic else 'real'} images from {loaded.source}"
    )
    enforced, _ = budget_policy(info, loaded)
    return FidelityProbe(images, reference, label, max_top1_drop if enforced else None)


def timed_inputs(model: Path, data: str, count: int, seed: int):
    """``bench --inputs``: real images, decoded and preprocessed as the model says, to time
    inference on (instead of random tensors, which hide data-dependent behaviour)."""
    from alexnet_deploy.calib.data import images_for_model

    loaded = images_for_model(
        read_artifact(model), data, count=count, seed=seed, what="--inputs"
    )
    images = loaded.eval.images
    return (
        images,
        f"{len(images)} {'synthetic' if loaded.synthetic else 'real'} images from {loaded.source}, repeated to fill a batch",
    )


def unstable_note(*rows: BenchRow) -> str:
    """' (unstable: LABEL: why; ...)' for the rows flagged unstable among ``rows``, else '':
    a headline never rests on an unstable row without saying so."""
    flagged = [f"{r.label}: {r.instability}" for r in rows if r.unstable]
    return f" (unstable: {'; '.join(flagged)})" if flagged else ""


def setup_text(case: Case) -> str:
    """A row's setup as a comparison names it: 'openvino int8 (nncf) b32 dynamic, 2 requests'."""
    route = f" ({case.quantizer})" if case.precision == "int8" else ""
    shape, n = "static" if case.static else "dynamic", case.concurrency
    requests = f"{n} request{'s' * (n != 1)}"
    return f"{case.backend} {case.precision}{route} b{case.batch} {shape}, {requests}"


def setup_differences(mine: Case, peer: Case) -> list[str]:
    """What differs between two rows compared at one batch and mode: 'route nncf vs qdq',
    'dynamic vs static', 'requests 4 vs 2', threads, float parts ([] where nothing does)."""
    int8 = mine.precision == peer.precision == "int8"
    floats = (mine.float_precision, peer.float_precision)
    pairs = {
        "route": (mine.quantizer, peer.quantizer) if int8 else (None, None),
        "shape": ("static" if mine.static else "dynamic", "static" if peer.static else "dynamic"),
        "requests": (mine.concurrency, peer.concurrency),
        "threads": (mine.threads or "default", peer.threads or "default"),
        "float parts": tuple(f or "as the file" for f in floats),
    }
    return [f"{what} {a} vs {b}" for what, (a, b) in pairs.items() if a != b]


def compared_setups(mine: Case, peer: Case) -> str:
    """'openvino int8 (nncf) b32 dynamic, 2 requests against openvino-direct int8 (qdq) b32
    static, 2 requests, throughput; differs in route nncf vs qdq, shape dynamic vs static'."""
    differ = setup_differences(mine, peer)
    alike = f"differs in {', '.join(differ)}" if differ else "set up alike"
    return f"{setup_text(mine)} against {setup_text(peer)}, {mine.mode}; {alike}"


def comparisons(rows: list[BenchRow]) -> dict:
    """Best INT8 row against PyTorch eager FP32, ONNX Runtime direct and OpenVINO direct, each
    at the same batch and mode (of those, the one set up most alike), and like with like: a row
    whose runtime computed in another precision than its own (OpenVINO's defaults: an FP32
    model run in bf16) is never a peer of that precision; the tool's OpenVINO bf16 engine is
    set against it instead. Each text names both rows' setups (route, batch, static or dynamic,
    requests) and what differs between them, and ends with a note naming any unstable row it
    rests on (and ``unstable`` lists them)."""
    ok = [r for r in rows if r.ok]
    out = _bf16_vs_direct(ok)
    int8 = [
        r
        for r in ok
        if r.case.precision == "int8" and r.case.backend not in ("ort-direct", "openvino-direct")
    ]
    if not int8:
        return out
    best = max(int8, key=lambda r: r.images_per_s)
    c = best.case
    out |= {
        "best_int8": {
            "backend": c.backend,
            "batch": c.batch,
            "mode": c.mode,
            "images_per_s": best.images_per_s,
            "p50_ms": best.p50_ms,
            "text": f"{c.backend} int8 batch {c.batch} {c.mode}: "
            f"{best.images_per_s:.1f} images/s, p50 {best.p50_ms:.2f} ms" + unstable_note(best),
            "unstable": _unstable_labels(best),
        }
    }
    peers = {
        "torch_fp32": ("torch", "fp32"),
        "ort_direct_int8": ("ort-direct", "int8"),
        "ort_direct_fp32": ("ort-direct", "fp32"),
        "openvino_direct_int8": ("openvino-direct", "int8"),
    }
    for name, (backend, precision) in peers.items():
        match = [
            r
            for r in ok
            if (r.case.backend, r.case.precision, r.case.batch, r.case.mode)
            == (backend, precision, c.batch, c.mode)
            and not r.ran_other
        ]
        if match:
            peer = min(match, key=lambda r: len(setup_differences(c, r.case)))
            ratio = best.images_per_s / peer.images_per_s
            out[f"best_int8_vs_{name}"] = {
                "ratio": ratio,
                "text": f"{ratio:.2f}x {backend} {precision} ({peer.images_per_s:.1f} images/s): "
                f"{compared_setups(c, peer.case)}" + unstable_note(best, peer),
                "unstable": _unstable_labels(best, peer),
            }
    return out


def _bf16_vs_direct(ok: list[BenchRow]) -> dict:
    """The tool's OpenVINO bf16 engine against OpenVINO used directly where its defaults ran
    the same FP32 model in bf16 too, at each batch and mode both measured."""
    out = {}
    for engine in (r for r in ok if r.case.backend == "openvino" and r.computed_in == "bf16"):
        c = engine.case
        for direct in ok:
            d = direct.case
            ran = (d.backend, d.precision, direct.computed_in, d.batch, d.mode)
            if ran == ("openvino-direct", "fp32", "bf16", c.batch, c.mode):  # the same model
                ratio = engine.images_per_s / direct.images_per_s
                out[f"openvino_bf16_vs_openvino_direct b{c.batch} {c.mode}"] = {
                    "ratio": ratio,
                    "text": f"openvino bf16 {engine.images_per_s:.1f} images/s, {ratio:.2f}x "
                    f"openvino-direct ({direct.computed_label}, {direct.images_per_s:.1f} "
                    f"images/s): {compared_setups(c, d)}" + unstable_note(engine, direct),
                    "unstable": _unstable_labels(engine, direct),
                }
    return out


def _unstable_labels(*rows: BenchRow) -> list[str]:
    return [r.label for r in rows if r.unstable]


@dataclass(frozen=True)
class BenchOptions:
    """How a bench run measures and reports, beyond its matrix (bench/config.py) and the
    images its model was made and judged with (``data``, ``seed``: the request's)."""

    inputs: str | None = None  # bench --inputs: real images timed instead of random tensors
    direct: bool = True  # also ONNX Runtime and OpenVINO used directly
    roofline: bool = True  # the machine's ceilings, and each row against them
    served: ServedModel | None = None  # bench --triton: a model served by Triton
    argv: list[str] | None = None  # the command the report records (default: sys.argv)
    # more headline comparisons (bench --self-check, --tuned), from the model and the rows
    extra_comparisons: Callable[[Path, list[BenchRow]], dict] | None = None
    # the budget a bf16 row is held to (FidelityProbe.over_budget); tune passes its own
    max_top1_drop: float = C.DEFAULT_MAX_TOP1_DROP
    # what measures, in place of the matrix loop (run_matrix's signature): tune's staged search
    search: Callable[..., BenchResult] | None = None


class BenchRun(NamedTuple):
    """A bench run: ``report`` (bench-summary.json's header: status, environment, model,
    comparisons), ``result`` (the typed rows and raw samples) and the report files written."""

    report: dict
    result: BenchResult
    paths: dict[str, Path]

    @property
    def rows(self) -> list[BenchRow]:
        return self.result.rows

    @property
    def status(self) -> str:  # "complete", "partial" (a configuration failed), "interrupted"
        return self.report["status"]


def run_bench(
    model: Path,
    config: BenchConfig,
    work_dir: Path,
    out_dir: Path,
    options: BenchOptions = BenchOptions(),
    *,
    data: str = "shipped",
    seed: int = C.DEFAULT_SEED,
    stages: dict[Stage, StageStatus] | None = None,
    progress: Progress = silent,
    progress_bar=None,
) -> BenchRun:
    """Measure the matrix on ``model`` (an FP32 export whose FP16/INT8 siblings the matrix
    needs are made) and publish the reports in ``out_dir``. ``data`` and ``seed`` choose the
    fidelity images; ``stages`` says how the artifacts were obtained. The caller holds
    ``work_dir``'s lock (workflow.bench_model: one lock per run, over the artifacts too)."""
    from alexnet_deploy.bench.roofline import measure_ceilings
    from alexnet_deploy.fileio import prepare_output

    require_held(work_dir, "bench")  # engines and caches of the work directory
    prepare_output(Path(out_dir) / "bench-summary.json", force=True, what="report", option="--out")
    model = Path(model)
    started = time.time()
    progress("fidelity reference")
    probe = fidelity_probe(model, data, seed, options.max_top1_drop)
    timed, inputs_text = None, "random: seeded standard-normal tensors"
    if options.inputs is not None:
        progress(f"loading the timed inputs from {options.inputs}")
        timed, inputs_text = timed_inputs(model, options.inputs, max(config.matrix.batches), seed)
    ceilings = None
    if options.roofline:
        progress("probing machine ceilings")
        ceilings = measure_ceilings(WorkDir(work_dir).cache)
    result = (options.search or run_matrix)(
        model,
        config,
        work_dir,
        probe,
        ceilings,
        seed=seed,
        direct=options.direct,
        progress=progress_bar,
        served=options.served,
        inputs=timed,
    )
    env = environment()
    info = read_artifact(model)
    meta = info.metadata
    argv = sys.argv[1:] if options.argv is None else options.argv
    status = "interrupted" if result.interrupted else ("partial" if result.failed else "complete")
    report = {
        "schema": SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        # a store's or history's URL recorded with its password masked (passwords.py)
        "command": shlex.join(["alexnet-deploy", *masked_argv(argv)]),
        "status": status,
        "wall_seconds": time.time() - started,
        "environment": env,
        "environment_key": comparable_key(env),
        "config": config.as_dict(),
        "model": {
            "name": info.model_name,  # every report, plot and gate verdict names the model
            "path": str(model),
            "sha256": sha256_file(model),
            "variant": meta.get("variant"),
            "weights": meta.get("weights"),
            "data": data,  # calibration and fidelity images: gate --run reuses them
            "seed": seed,
        },
        # how each artifact was obtained: {"int8": "cached", ...}
        "stages": {str(stage): str(how) for stage, how in (stages or {}).items()},
        "ceilings": None if ceilings is None else ceilings.__dict__,
        "fidelity_source": probe.source,
        "timed_inputs": inputs_text,
        "comparisons": comparisons(result.rows),
        # asked for and refused before any work, or a default backend left out: with why
        "not_measured": [{"what": n.what, "reason": n.reason} for n in result.not_measured],
    }
    if options.extra_comparisons and not result.interrupted:
        report["comparisons"].update(options.extra_comparisons(model, result.rows))
    paths = publish_reports(report, result.rows, result.samples, out_dir)
    return BenchRun(report, result, paths)


def unstable_rows(rows: list[BenchRow]) -> list[BenchRow]:
    return [r for r in rows if r.unstable]
