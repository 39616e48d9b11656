"""The orchestration layer: export -> FP16 / INT8 -> engines -> bench -> gate -> package over
one model's artifact set (artifacts.py). The stages below it are leaves that take explicit
artifacts; this module decides which artifacts a job needs, makes or reuses them (each cached
by content, one run at a time per work directory), then hands them to the stage.

    prepare_artifacts   FP32 export (or the given model) plus the FP16/INT8 siblings needed
    bench_model         prepare_artifacts, then bench.pipeline.run_bench (the main job)
    rerun_baseline      gate --run: a baseline report's configurations benched again now
    aa_on_model         gate --aa: one engine against itself, interleaved
    package_model       package --triton, from the given model or the main job's export
    predict_images      predict: real images classified by a built engine, timed per stage
    end_to_end_model    bench --end-to-end: image bytes to label, per preprocessing placement
    compare_artifacts   compare: a candidate's precision lost, layer by layer
    paired_gate         gate --paired: baseline's and current engines interleaved, judged per pair
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from alexnet_deploy import constants as C
from alexnet_deploy.artifact import read_artifact
from alexnet_deploy.artifacts import ArtifactSet, WorkDir
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


def prepare_artifacts(
    request: ModelRequest,
    work_dir: Path,
    progress: Progress,
    need: frozenset = frozenset({"fp16", "int8"}),
) -> tuple[Path, dict]:
    """FP32 model plus the FP16, INT8 and NNCF INT8 ("int8-nncf") artifacts in ``need``,
    reusing whatever is there (made by one run at a time per work directory)."""
    with directory_lock(work_dir, "prepare artifacts"):
        return _prepare_artifacts(request, work_dir, progress, need)


def _prepare_artifacts(
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
        model = WorkDir(work_dir).export(request.variant, _export_key(request))
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


def artifacts_needed(precisions, quantizers, served: bool = False) -> frozenset:
    """What a bench matrix needs made beside the FP32 model (nothing for a served model)."""
    if served:
        return frozenset()
    need = frozenset(precisions) - {"fp32"}
    if "int8" in need and "nncf" in quantizers:
        need |= {"int8-nncf"}
    return need


def bench_model(
    request: ModelRequest,
    config,
    work_dir: Path,
    out_dir: Path,
    *,
    progress: Progress = lambda m: None,
    served=None,
    **bench_options,
):
    """The main job: the artifacts the matrix needs, then the bench over them. Returns
    ``(report, result, paths)`` as bench.pipeline.run_bench does."""
    from alexnet_deploy.bench.pipeline import run_bench

    need = artifacts_needed(
        config.matrix.precisions, config.matrix.quantizers, served=served is not None
    )
    with directory_lock(work_dir, "bench"):  # nobody changes the artifacts in between
        model, stages = prepare_artifacts(request, work_dir, progress, need)
        return run_bench(
            model, config, work_dir, out_dir, data=request.data, seed=request.seed,
            stages=stages, progress=progress, served=served, **bench_options,
        )  # fmt: skip


def rerun_baseline(baseline, work_dir: Path, out: Path | None = None) -> Path:
    """``gate --run``: bench a loaded baseline report's configurations (every key field,
    threads and streams included), model, images and seed on this machine now; return the
    new report's directory."""
    from alexnet_deploy.gate.baseline import rerun_plan

    plan = rerun_plan(baseline)
    out = out or WorkDir(work_dir).gate_run_reports
    bench_model(
        ModelRequest(model=plan.model, data=plan.data, seed=plan.seed),
        plan.config,
        work_dir,
        out,
        direct=False,
        roofline=False,
    )
    return out


def measure_run_noise(baseline, runs: int, work_dir: Path, progress=lambda m: None):
    """``gate BASELINE --measure-noise RUNS``: the baseline's configurations benched ``runs``
    more times as separate runs (fresh sessions each), their spread with the baseline's own
    run stored beside it (gate/spread.py). Returns the spread and the file."""
    import tempfile

    from alexnet_deploy.errors import UsageError
    from alexnet_deploy.gate.reports import load_report
    from alexnet_deploy.gate.spread import spread_of_runs, write_noise_record
    from alexnet_deploy.sysinfo import cpu_info

    if runs < 2:
        raise UsageError(f"--measure-noise needs at least 2 runs, got {runs}")
    if baseline.is_history or baseline.ratios:
        raise UsageError(
            "--measure-noise takes one bench report as BASELINE",
            hint="a history directory measures its spread from its own reports",
        )
    measured = [baseline.runs[0]]
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work_dir, prefix="noise-runs-") as scratch:
        for i in range(runs):
            progress(f"separate run {i + 1}/{runs}")
            out = rerun_baseline(baseline, work_dir, Path(scratch) / f"run-{i}")
            measured.append(load_report(out).runs[0])
    spread = spread_of_runs(measured, f"{len(measured)} separate runs")
    cpu = cpu_info()
    machine = f"{cpu['model']}, {cpu['logical_cores']} logical cores"
    return spread, write_noise_record(baseline.paths[0].parent, spread, machine)


def compare_artifacts(
    reference: Path, candidate: Path, data: str = "shipped", *, count: int | None = None,
    runtime: str = "emulated", batch_size: int = 8, seed: int = C.DEFAULT_SEED,
    profile_runs: int = 0, progress: Progress = lambda m: None,
):  # fmt: skip
    """``compare``: the reference's images (its own preprocessing), then every layer of the
    candidate against the reference (precision/compare.py)."""
    from alexnet_deploy.calib.data import load_held_out
    from alexnet_deploy.errors import UsageError
    from alexnet_deploy.precision.compare import compare_models

    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}")
    info = read_artifact(reference)
    info.require_float_input()
    progress(f"reading images from {data}")
    pre = info.preprocessing()
    images = load_held_out(data, image_shape=info.image_shape, preprocessing=pre, count=count,
                           seed=seed).eval.images  # fmt: skip
    return compare_models(
        reference, candidate, images, runtime=runtime, batch_size=batch_size,
        profile_runs=profile_runs, progress=progress,
    )  # fmt: skip


def aa_on_model(
    model, backend: str, precision: str, batch: int, trials: int, threshold: float,
    work_dir: Path, on_trial=lambda i, o: None,
):  # fmt: skip
    """``gate --aa``: the artifact and engine, then ``trials`` interleaved A/A trials."""
    from alexnet_deploy.engines.build import build_engine
    from alexnet_deploy.engines.options import BuildOptions
    from alexnet_deploy.gate.noise import aa_on_engine, check_trials

    check_trials(trials)  # before any artifact is made
    path, _ = prepare_artifacts(
        ModelRequest(model=model), work_dir, lambda _m: None, frozenset({precision}) - {"fp32"}
    )
    engine, _ = build_engine(path, backend, BuildOptions(precision=precision), work_dir)
    return aa_on_engine(engine, batch, trials, threshold, on_trial=on_trial)


def package_model(
    model: Path | None, out: Path, *, work_dir: Path, progress: Progress = lambda m: None,
    **package_options,
):  # fmt: skip
    """``package --triton``: the repository for ``model``, or for the main job's export (made
    or reused, with its FP16 and INT8 siblings) when none is given."""
    from alexnet_deploy.serve.package import package_triton

    if model is None:
        model, _ = prepare_artifacts(ModelRequest(), work_dir, progress)
    progress("packaging")
    return package_triton(model, out, work_dir=work_dir, **package_options)


def predict_images(
    paths: list[Path], model: Path | None, backend: str, precision: str, work_dir: Path, *,
    top: int = 5, labels: Path | None = None, progress: Progress = lambda m: None,
):  # fmt: skip
    """``predict``: the model (or the main job's export, made or reused with the artifact the
    precision needs), its engine (built or reused), then each image classified. Returns
    ``(predictions, engine, artifact info)``."""
    from alexnet_deploy.engines.build import build_engine
    from alexnet_deploy.engines.options import BuildOptions
    from alexnet_deploy.engines.registry import get_backend
    from alexnet_deploy.predict import class_names, classify, image_files

    files, failed = image_files(paths)
    if model is None:  # the main job's export, with the artifact this precision needs
        need = frozenset({precision}) - {"fp32"}
        model, _ = prepare_artifacts(ModelRequest(), work_dir, progress, need)
    # a given model's FP16/INT8 file must exist beside it (build names the command if not)
    info = read_artifact(model)
    if info.preprocessing() is None:
        from alexnet_deploy.errors import UsageError

        raise UsageError(
            f"{model} does not say how its images are preprocessed (not an alexnet-deploy export)",
            hint="export it with 'alexnet-deploy export', which records resize, crop, mean and std",
        )
    progress(f"engine: {backend} {precision}")
    engine, _ = build_engine(model, backend, BuildOptions(precision=precision), work_dir)
    classes = info.outputs[0].dims[-1]
    names = class_names(classes if isinstance(classes, int) else 0, labels)
    progress(f"classifying {len(files)} image(s)")
    with get_backend(backend).runner(engine) as runner:
        results = classify(files, runner.infer, info.preprocessing(), top, names)
    return failed + results, engine, info


def end_to_end_model(
    request: ModelRequest, config, inputs: str, work_dir: Path, out_dir: Path, *,
    progress: Progress = lambda m: None,
):  # fmt: skip
    """``bench --end-to-end``: the artifacts the matrix's precisions need, then each
    (backend, precision) from image bytes to label per preprocessing placement; the table
    written beside the bench reports. Returns ``(rows, paths)``."""
    import time

    from alexnet_deploy.bench.end_to_end import end_to_end_rows, write_end_to_end
    from alexnet_deploy.bench.fingerprint import environment
    from alexnet_deploy.engines.registry import BACKEND_NAMES, get_backend
    from alexnet_deploy.fileio import prepare_output

    prepare_output(Path(out_dir) / "end-to-end.json", force=True, what="report", option="--out")
    backends = [b for b in config.matrix.backends if b in BACKEND_NAMES] or [
        b for b in ("ort", "openvino") if get_backend(b).capability().available
    ]
    with directory_lock(work_dir, "bench"):
        need = artifacts_needed(config.matrix.precisions, ("qdq",))
        model, _ = prepare_artifacts(request, work_dir, progress, need)
        cases = [(b, p) for b in backends for p in config.matrix.precisions]
        rows = end_to_end_rows(
            model, cases, inputs, work_dir, min_seconds=config.rules.min_seconds,
            max_seconds=config.rules.max_seconds, progress=progress,
        )  # fmt: skip
    env = environment()
    meta = {
        "machine": f"{env['cpu']} ({env.get('cpu_isa')}), {env['logical_cores']} logical cores",
        "model": str(model),
        "inputs": inputs,
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return rows, write_end_to_end(rows, out_dir, meta)


def paired_gate(
    baseline, base_model: Path, current_model: Path | None, work_dir: Path, threshold: float, *,
    progress: Progress = lambda m: None,
):  # fmt: skip
    """``gate --paired``: for each configuration of the ``baseline`` report, the engine of its
    model and the engine of ``current_model`` (artifacts made or reused as needed), measured
    interleaved in one process; a GateResult in mode "paired". No ``current_model``: the main
    job's export."""
    from alexnet_deploy.bench.targets import engine_options
    from alexnet_deploy.engines.build import build_engine
    from alexnet_deploy.gate.paired_gate import compare_paired

    cases = list(baseline.rows)
    need = artifacts_needed({c.precision for c in cases}, {c.quantizer for c in cases})
    with directory_lock(work_dir, "gate"):
        models = [
            prepare_artifacts(ModelRequest(model=m), work_dir, progress, need)[0]
            for m in (base_model, current_model)
        ]

        def engines_for(case):
            options = engine_options(case)
            return tuple(build_engine(m, case.backend, options, work_dir)[0] for m in models)

        return compare_paired(cases, engines_for, threshold, progress=progress)


def paired_gate_or_fallback(
    baseline, baseline_model: Path | None, current_model: Path | None, work_dir: Path,
    threshold: float, *, required: bool, progress: Progress = lambda m: None,
):  # fmt: skip
    """Paired mode when the baseline's model (its recorded path, or ``baseline_model``) is on
    this machine: ``(result, None)``. Otherwise ``(None, why)`` for the caller to compare the
    reports unpaired, or, when ``required`` (or no CURRENT report exists), a usage error."""
    from alexnet_deploy.errors import UsageError
    from alexnet_deploy.gate.paired_gate import baseline_model as find_model

    found = find_model(baseline.paths[0], baseline_model, work_dir)
    if found is None:
        where = baseline_model or (
            f"the file recorded in {baseline.paths[0]}, by path and content, or one of the same "
            f"content in {work_dir}"
        )
        why = f"paired mode needs the baseline's model ({where}), which is not on this machine"
        if required:
            raise UsageError(why, hint="pass it with --baseline-model, or a CURRENT report")
        return None, why
    return paired_gate(baseline, found, current_model, work_dir, threshold, progress=progress), None
