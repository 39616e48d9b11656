"""The bench stage: every engine of the matrix on a given model's artifacts, each row paired
with its fidelity, and the reports. Engines are cached by content in the work directory. The
artifacts it measures are made before it by the orchestration layer (alexnet_deploy/workflow.py)."""

from __future__ import annotations

import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

from alexnet_deploy import constants as C
from alexnet_deploy.artifact import read_artifact
from alexnet_deploy.artifacts import WorkDir
from alexnet_deploy.bench.config import BenchConfig
from alexnet_deploy.bench.fingerprint import comparable_key, environment
from alexnet_deploy.bench.report import SCHEMA, publish_reports
from alexnet_deploy.bench.run import BenchResult, FidelityProbe, run_matrix
from alexnet_deploy.fileio import sha256_file
from alexnet_deploy.locking import directory_lock

Progress = Callable[[str], None]


def fidelity_probe(model: Path, data: str, seed: int) -> FidelityProbe:
    """The fixed fidelity inputs (real images) and their FP32 logits from ONNX Runtime."""
    from alexnet_deploy.calib.data import load_held_out
    from alexnet_deploy.calib.fidelity import ort_logits

    info = read_artifact(model)
    loaded = load_held_out(
        data,
        image_shape=info.image_shape,
        preprocessing=info.preprocessing(),
        count=C.BENCH_FIDELITY_SAMPLES,
        seed=seed,
    )
    images = loaded.eval.images
    reference = ort_logits(model, info.input.name, images, batch_size=8)
    label = (
        f"{len(images)} {'synthetic' if loaded.synthetic else 'real'} images from {loaded.source}"
    )
    return FidelityProbe(images, reference, label)


def timed_inputs(model: Path, data: str, count: int, seed: int):
    """``bench --inputs``: real images, decoded and preprocessed as the model says, to time
    inference on (instead of random tensors, which hide data-dependent behaviour)."""
    from alexnet_deploy.calib.data import load_held_out

    info = read_artifact(model)
    loaded = load_held_out(
        data,
        image_shape=info.image_shape,
        preprocessing=info.preprocessing(),
        count=count,
        seed=seed,
    )
    images = loaded.eval.images
    return (
        images,
        f"{len(images)} {'synthetic' if loaded.synthetic else 'real'} images from {loaded.source}, repeated to fill a batch",
    )


def comparisons(rows: list[dict]) -> dict:
    """Best INT8 row against PyTorch eager FP32, ONNX Runtime direct and OpenVINO direct, each
    at the same batch and mode."""
    ok = [r for r in rows if r["status"] == "ok"]
    int8 = [
        r
        for r in ok
        if r["precision"] == "int8" and r["backend"] not in ("ort-direct", "openvino-direct")
    ]
    if not int8:
        return {}
    best = max(int8, key=lambda r: r["images_per_s"])
    out = {
        "best_int8": {k: best[k] for k in ("backend", "batch", "mode", "images_per_s", "p50_ms")}
    }
    out["best_int8"]["text"] = (
        f"{best['backend']} int8 batch {best['batch']} {best['mode']}: "
        f"{best['images_per_s']:.1f} images/s, p50 {best['p50_ms']:.2f} ms"
    )
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
            if r["backend"] == backend
            and r["precision"] == precision
            and r["batch"] == best["batch"]
            and r["mode"] == best["mode"]
        ]
        if match:
            ratio = best["images_per_s"] / match[0]["images_per_s"]
            out[f"best_int8_vs_{name}"] = {
                "ratio": ratio,
                "text": f"{ratio:.2f}x {backend} {precision} ({match[0]['images_per_s']:.1f} images/s), same batch and mode",
            }
    return out


def run_bench(
    model: Path,
    config: BenchConfig,
    work_dir: Path,
    out_dir: Path,
    *,
    data: str = "shipped",
    seed: int = C.DEFAULT_SEED,
    stages: dict | None = None,
    inputs: str | None = None,
    direct: bool = True,
    roofline: bool = True,
    progress_bar=None,
    progress: Progress = lambda m: None,
    argv: list[str] | None = None,
    extra_comparisons: Callable[[Path, list[dict]], dict] | None = None,
    served=None,
) -> tuple[dict, BenchResult, dict[str, Path]]:
    """Measure the matrix on ``model`` (an FP32 export whose FP16/INT8 siblings the matrix
    needs are made: workflow.prepare_artifacts) and publish the reports. ``data`` and
    ``seed`` choose the fidelity images; ``stages`` says how the artifacts were obtained."""
    from alexnet_deploy.fileio import prepare_output

    prepare_output(Path(out_dir) / "bench-summary.json", force=True, what="report", option="--out")
    with directory_lock(work_dir, "bench"):  # engines and caches of the work directory
        return _run_bench_locked(
            Path(model), config, work_dir, out_dir, data=data, seed=seed, stages=stages or {},
            inputs=inputs,
            direct=direct, roofline=roofline, progress_bar=progress_bar, progress=progress,
            argv=argv, extra_comparisons=extra_comparisons, served=served,
        )  # fmt: skip


def _run_bench_locked(
    model: Path,
    config: BenchConfig,
    work_dir: Path,
    out_dir: Path,
    *,
    data: str,
    seed: int,
    stages: dict,
    inputs: str | None,
    direct: bool,
    roofline: bool,
    progress_bar,
    progress: Progress,
    argv: list[str] | None,
    extra_comparisons: Callable[[Path, list[dict]], dict] | None,
    served,
) -> tuple[dict, BenchResult, dict[str, Path]]:
    from alexnet_deploy.bench.roofline import measure_ceilings

    started = time.time()
    progress("fidelity reference")
    probe = fidelity_probe(model, data, seed)
    timed, inputs_text = None, "random: seeded standard-normal tensors"
    if inputs is not None:
        progress(f"loading the timed inputs from {inputs}")
        timed, inputs_text = timed_inputs(model, inputs, max(config.matrix.batches), seed)
    ceilings = None
    if roofline:
        progress("probing machine ceilings")
        ceilings = measure_ceilings(WorkDir(work_dir).cache)
    result = run_matrix(
        model,
        config,
        work_dir,
        probe,
        ceilings,
        seed=seed,
        direct=direct,
        progress=progress_bar,
        served=served,
        inputs=timed,
    )
    env = environment()
    meta = read_artifact(model).metadata
    status = "interrupted" if result.interrupted else ("partial" if result.failed else "complete")
    report = {
        "schema": SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": shlex.join(["alexnet-deploy", *(argv if argv is not None else sys.argv[1:])]),
        "status": status,
        "wall_seconds": time.time() - started,
        "environment": env,
        "environment_key": comparable_key(env),
        "config": config.as_dict(),
        "model": {
            "path": str(model),
            "sha256": sha256_file(model),
            "variant": meta.get("variant"),
            "weights": meta.get("weights"),
            "data": data,  # calibration and fidelity images: gate --run reuses them
            "seed": seed,
        },
        "stages": stages,
        "ceilings": None if ceilings is None else ceilings.__dict__,
        "fidelity_source": probe.source,
        "timed_inputs": inputs_text,
        "comparisons": comparisons(result.rows),
    }
    if extra_comparisons and not result.interrupted:
        report["comparisons"].update(extra_comparisons(model, result.rows))
    paths = publish_reports(report, result.rows, result.samples, out_dir)
    return report, result, paths


def noisy_rows(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r.get("noisy")]
