"""The main job: export (if needed), FP16 and INT8 artifacts, every available engine, the
benchmark matrix, the reports. Every stage is cached by content in the work directory, so a
second run redoes only what changed."""

from __future__ import annotations

import hashlib
import json
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from alexnet_deploy import constants as C
from alexnet_deploy.artifact import read_artifact
from alexnet_deploy.artifacts import ArtifactSet
from alexnet_deploy.bench.config import BenchConfig
from alexnet_deploy.bench.fingerprint import comparable_key, environment
from alexnet_deploy.bench.report import SCHEMA, publish_reports
from alexnet_deploy.bench.run import BenchResult, FidelityProbe, run_matrix
from alexnet_deploy.errors import AlexnetDeployError
from alexnet_deploy.fileio import sha256_file
from alexnet_deploy.locking import directory_lock
from alexnet_deploy.models.variants import DEFAULT_VARIANT

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ModelRequest:
    model: Path | None = None  # an existing FP32 export; None: export one
    variant: str = DEFAULT_VARIANT
    weights: Path | None = None
    seed: int = C.DEFAULT_SEED
    data: str = "shipped"  # calibration and fidelity images


def _export_key(request: ModelRequest) -> str:
    from alexnet_deploy import __version__

    weights = sha256_file(request.weights) if request.weights else "untrained"
    text = json.dumps(
        {
            "variant": request.variant,
            "weights": weights,
            "seed": request.seed,
            "opset": C.DEFAULT_OPSET,
            "tool": __version__,
        },
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def ensure_artifacts(
    request: ModelRequest,
    work_dir: Path,
    progress: Progress,
    need: frozenset = frozenset({"fp16", "int8"}),
) -> tuple[Path, dict]:
    """FP32 model plus the FP16, INT8 and NNCF INT8 ("int8-nncf") artifacts in ``need``,
    reusing whatever is there (made by one run at a time per work directory)."""
    with directory_lock(work_dir, "prepare artifacts"):
        return _ensure_artifacts(request, work_dir, progress, need)


def _ensure_artifacts(
    request: ModelRequest, work_dir: Path, progress: Progress, need: frozenset
) -> tuple[Path, dict]:
    from alexnet_deploy.calib.fp16 import convert_fp16
    from alexnet_deploy.calib.int8 import isa_mismatch
    from alexnet_deploy.calib.pipeline import calibrate
    from alexnet_deploy.calib.stage import DataRequest
    from alexnet_deploy.cpu_isa import this_cpu
    from alexnet_deploy.exporter.pipeline import export_onnx
    from alexnet_deploy.models.variants import get_variant

    done: dict[str, str] = {}
    if request.model is not None:
        model = Path(request.model)
        read_artifact(model)
        done["export"] = "given"
    else:
        model = (
            Path(work_dir)
            / "models"
            / f"{request.variant}-{_export_key(request)}"
            / f"alexnet-{request.variant}.onnx"
        )
        if model.is_file() and model.with_name(model.name + ".json").is_file():
            done["export"] = "cached"
        else:
            progress("exporting")
            export_onnx(
                get_variant(request.variant),
                model,
                weights=request.weights,
                seed=request.seed,
                force=True,
            )
            done["export"] = "built"
    artifacts = ArtifactSet(model)

    if "fp16" not in need:
        done["fp16"] = "not needed"
    elif artifacts.belongs(artifacts.fp16):
        done["fp16"] = "cached"
    else:
        progress("converting to FP16")
        convert_fp16(model, DataRequest(data=request.data), force=True)
        done["fp16"] = "built"

    data_request = DataRequest(data=request.data, seed=request.seed)
    if "int8" not in need:
        done["int8"] = "not needed"
    elif all(artifacts.belongs(artifacts.int8(f)) for f in ("cpu", "tensorrt")) and not (
        isa_mismatch(read_artifact(artifacts.int8("cpu")).metadata, this_cpu().name)
    ):  # made from this model, and the CPU form for this CPU's class: reuse
        done["int8"] = "cached"
    else:
        progress("calibrating INT8")
        report = calibrate(model, data_request, force=True)
        if report.failures:
            raise AlexnetDeployError("; ".join(report.failures))
        done["int8"] = "built"

    if "int8-nncf" in need:
        from alexnet_deploy.calib.nncf_quant import quantize_nncf

        if artifacts.belongs(artifacts.int8("nncf")):
            done["int8-nncf"] = "cached"
        else:
            progress("quantizing INT8 with NNCF")
            quantize_nncf(model, data_request, max_top1_drop=C.DEFAULT_MAX_TOP1_DROP, force=True)
            done["int8-nncf"] = "built"
    return model, done


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
    request: ModelRequest,
    config: BenchConfig,
    work_dir: Path,
    out_dir: Path,
    *,
    direct: bool = True,
    roofline: bool = True,
    progress_bar=None,
    progress: Progress = lambda m: None,
    argv: list[str] | None = None,
    extra_comparisons: Callable[[Path, list[dict]], dict] | None = None,
    served=None,
) -> tuple[dict, BenchResult, dict[str, Path]]:
    from alexnet_deploy.fileio import prepare_output

    prepare_output(Path(out_dir) / "bench-summary.json", force=True, what="report", option="--out")
    with directory_lock(work_dir, "bench"):  # engines and caches of the work directory
        return _run_bench_locked(
            request, config, work_dir, out_dir, direct=direct, roofline=roofline,
            progress_bar=progress_bar, progress=progress, argv=argv,
            extra_comparisons=extra_comparisons, served=served,
        )  # fmt: skip


def _run_bench_locked(
    request: ModelRequest,
    config: BenchConfig,
    work_dir: Path,
    out_dir: Path,
    *,
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
    need = frozenset() if served is not None else frozenset(config.matrix.precisions) - {"fp32"}
    if "int8" in need and "nncf" in config.matrix.quantizers:
        need |= {"int8-nncf"}
    model, stages = ensure_artifacts(request, work_dir, progress, need)
    probe = fidelity_probe(model, request.data, request.seed)
    ceilings = None
    if roofline:
        progress("probing machine ceilings")
        ceilings = measure_ceilings(Path(work_dir) / ".cache")
    result = run_matrix(
        model,
        config,
        work_dir,
        probe,
        ceilings,
        seed=request.seed,
        direct=direct,
        progress=progress_bar,
        served=served,
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
            "data": request.data,  # calibration and fidelity images: gate --run reuses them
            "seed": request.seed,
        },
        "stages": stages,
        "ceilings": None if ceilings is None else ceilings.__dict__,
        "fidelity_source": probe.source,
        "comparisons": comparisons(result.rows),
    }
    if extra_comparisons and not result.interrupted:
        report["comparisons"].update(extra_comparisons(model, result.rows))
    paths = publish_reports(report, result.rows, result.samples, out_dir)
    return report, result, paths


def noisy_rows(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r.get("noisy")]
