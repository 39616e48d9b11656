"""The orchestration layer: export -> FP16 / INT8 -> engines -> bench -> gate -> package over
one model's artifact set (artifacts.py). The stages below it are leaves that take explicit
artifacts; this module only orchestrates: which artifacts a job needs, made or reused (each
cached by content), then the stage. Each job takes its work directory's lock once, at its top
(locking.py), and holds it over the artifacts and the stage that uses them.

    prepare_artifacts   FP32 export (or the given model) plus the FP16/INT8 siblings needed
    bench_model         the artifacts, then bench.pipeline.run_bench (the main job)
    gate_makers         what the gate measures, made here (gate/modes.py decides the mode)
    package_model       package --triton, from the given model or the main job's export
    predict_images      predict: the artifact and its engine, then predict.classify_with
    end_to_end_model    bench --end-to-end: the artifacts, then bench.end_to_end's report

A script calls alexnet_deploy.api (docs/api.md), over these jobs and the stages.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from alexnet_deploy import constants as C
from alexnet_deploy.artifacts import ArtifactSet, Stage, StageStatus, WorkDir, export_key
from alexnet_deploy.errors import AlexnetDeployError
from alexnet_deploy.locking import directory_lock, require_held
from alexnet_deploy.models.variants import DEFAULT_VARIANT
from alexnet_deploy.onnx_model import ENGINE_BATCH, read_artifact
from alexnet_deploy.progress import Progress, silent

if TYPE_CHECKING:
    from alexnet_deploy.bench.config import BenchConfig
    from alexnet_deploy.bench.pipeline import BenchOptions, BenchRun
    from alexnet_deploy.bench.records import EndToEndRow, NotMeasured
    from alexnet_deploy.predict import Classified
    from alexnet_deploy.serve.package import Repository


SIBLINGS = frozenset({Stage.FP16, Stage.INT8})  # what the main job makes beside its export


@dataclass(frozen=True)
class ModelRequest:
    model: Path | None = None  # an existing FP32 export; None: export one
    variant: str = DEFAULT_VARIANT
    weights: Path | None = None
    seed: int = C.DEFAULT_SEED
    data: str = "shipped"  # calibration and fidelity images


def prepare_artifacts(
    request: ModelRequest,
    work_dir: Path,
    progress: Progress,
    need: frozenset[Stage] = SIBLINGS,
) -> tuple[Path, dict[Stage, StageStatus]]:
    """A job of its own: the FP32 model plus the FP16, INT8 and NNCF INT8 artifacts in
    ``need``, reusing whatever is there; how each stage was obtained."""
    with directory_lock(work_dir, "prepare artifacts"):
        return _prepare_artifacts(request, work_dir, progress, need)


def _prepare_artifacts(
    request: ModelRequest, work_dir: Path, progress: Progress, need: frozenset[Stage]
) -> tuple[Path, dict[Stage, StageStatus]]:
    """prepare_artifacts' work, for a job that holds the work directory's lock."""
    from alexnet_deploy.calib.bf16 import convert_bf16
    from alexnet_deploy.calib.fp16 import convert_fp16
    from alexnet_deploy.calib.int8 import isa_mismatch
    from alexnet_deploy.calib.pipeline import calibrate
    from alexnet_deploy.calib.stage import DataRequest
    from alexnet_deploy.cpu_isa import this_cpu
    from alexnet_deploy.exporter.pipeline import export_onnx
    from alexnet_deploy.models.variants import get_variant

    require_held(work_dir, "making artifacts")
    done: dict[Stage, StageStatus] = {}
    if request.model is not None:
        model = Path(request.model)
        read_artifact(model).batch_for(1, ENGINE_BATCH)  # every job made here builds engines
        done[Stage.EXPORT] = StageStatus.GIVEN
    else:
        key = export_key(request.variant, request.weights, request.seed)
        model = WorkDir(work_dir).export(request.variant, key)
        if model.is_file() and model.with_name(model.name + ".json").is_file():
            done[Stage.EXPORT] = StageStatus.CACHED
        else:
            progress("exporting")
            export_onnx(
                get_variant(request.variant),
                model,
                weights=request.weights,
                seed=request.seed,
                force=True,
            )
            done[Stage.EXPORT] = StageStatus.BUILT
    artifacts = ArtifactSet(model)

    for stage, convert in ((Stage.FP16, convert_fp16), (Stage.BF16, convert_bf16)):
        if stage not in need:  # BF16, like NNCF's INT8, is listed only where a job needs it
            if stage is Stage.FP16:
                done[stage] = StageStatus.NOT_NEEDED
        elif artifacts.belongs(artifacts.for_precision(str(stage))):
            done[stage] = StageStatus.CACHED
        else:
            progress(f"converting to {str(stage).upper()}")
            convert(model, DataRequest(data=request.data), force=True)
            done[stage] = StageStatus.BUILT

    data_request = DataRequest(data=request.data, seed=request.seed)
    # the main job's INT8 files are a cache of its request's; those beside a given model, the user's
    made_for = None if request.model is not None else data_request.source_key()
    if Stage.INT8 not in need:
        done[Stage.INT8] = StageStatus.NOT_NEEDED
    elif all(artifacts.belongs(artifacts.int8(f), made_for) for f in ("cpu", "tensorrt")) and not (
        isa_mismatch(read_artifact(artifacts.int8("cpu")).metadata, this_cpu().name)
    ):  # made from this model, and the CPU form for this CPU's class: reuse
        done[Stage.INT8] = StageStatus.CACHED
    else:
        progress("calibrating INT8")
        report = calibrate(model, data_request, force=True)
        if report.failures:
            raise AlexnetDeployError("; ".join(report.failures))
        done[Stage.INT8] = StageStatus.BUILT

    if Stage.INT8_NNCF in need:
        from alexnet_deploy.calib.nncf_quant import quantize_nncf

        if artifacts.belongs(artifacts.int8("nncf"), made_for):
            done[Stage.INT8_NNCF] = StageStatus.CACHED
        else:
            progress("quantizing INT8 with NNCF")
            quantize_nncf(model, data_request, max_top1_drop=C.DEFAULT_MAX_TOP1_DROP, force=True)
            done[Stage.INT8_NNCF] = StageStatus.BUILT
    return model, done


def artifacts_needed(
    precisions, quantizers, served: bool = False, backends: tuple[str, ...] = ()
) -> frozenset[Stage]:
    """What a bench matrix needs made beside the FP32 model (nothing for a served model). The
    BF16 file only where a GPU backend may run (``backends``: those asked for, () for any):
    a CPU runtime runs bf16 from the FP32 model."""
    from alexnet_deploy.engines.registry import GPU_BACKENDS

    if served:
        return frozenset()
    need = frozenset(map(Stage.making, precisions)) - {Stage.EXPORT}
    if backends and not set(backends) & set(GPU_BACKENDS):
        need -= {Stage.BF16}
    if Stage.INT8 in need and "nncf" in quantizers:
        need |= {Stage.INT8_NNCF}
    return need


def bench_model(
    request: ModelRequest,
    config: BenchConfig,
    work_dir: Path,
    out_dir: Path,
    options: BenchOptions | None = None,
    *,
    progress: Progress = silent,
    progress_bar=None,
    **changes,
) -> BenchRun:
    """The main job: the artifacts the matrix needs (made or reused), then the bench over
    them, both under one hold of the work directory's lock (nobody changes the artifacts in
    between). ``options``: bench.pipeline.BenchOptions, with ``changes`` to its fields given
    as keywords (``roofline=False``). Returns the BenchRun (``report, result, paths``)."""
    from alexnet_deploy.bench.pipeline import BenchOptions, run_bench
    from alexnet_deploy.bench.report import check_report_dir

    options = replace(options or BenchOptions(), **changes)
    inputs = {
        "model": request.model,
        "checkpoint": request.weights,
        "images": request.data,
        "timed images": options.inputs,
    }
    check_report_dir(out_dir, work_dir, inputs=inputs)  # before any work
    need = artifacts_needed(
        config.matrix.precisions,
        config.matrix.quantizers,
        served=options.served is not None,
        backends=config.matrix.backends,
    )
    with directory_lock(work_dir, "bench"):
        model, stages = _prepare_artifacts(request, work_dir, progress, need)
        return run_bench(
            model,
            config,
            work_dir,
            out_dir,
            options,
            data=request.data,
            seed=request.seed,
            stages=stages,
            progress=progress,
            progress_bar=progress_bar,
        )


def gate_makers(work_dir: Path, progress: Progress = lambda m: None):
    """What the gate measures, made by this layer (the gate library never exports, calibrates
    or benches on its own): a model's artifacts for a paired gate; a bench of a baseline's
    configurations for ``--run`` and ``--measure-noise``. Pass to gate.modes.run_gate."""
    from alexnet_deploy.gate.modes import Makers

    def artifacts(model: Path | None, precisions, quantizers) -> Path:
        need = artifacts_needed(precisions, quantizers)
        return prepare_artifacts(ModelRequest(model=model), work_dir, progress, need)[0]

    def bench(plan, out: Path) -> Path:
        request = ModelRequest(model=plan.model, data=plan.data, seed=plan.seed)
        bench_model(request, plan.config, work_dir, out, direct=False, roofline=False)
        return out

    return Makers(artifacts, bench)


def package_model(
    model: Path | None,
    out: Path,
    *,
    work_dir: Path,
    progress: Progress = silent,
    **package_options,
) -> Repository:
    """``package --triton``: the repository for ``model``, or for the main job's export (made
    or reused, with its FP16 and INT8 siblings) when none is given; ``package_options`` go to
    serve.package.package_triton."""
    from alexnet_deploy.serve.package import package_triton

    with directory_lock(work_dir, "package"):
        if model is None:
            model, _ = _prepare_artifacts(ModelRequest(), work_dir, progress, SIBLINGS)
        progress("packaging")
        return package_triton(model, out, work_dir=work_dir, **package_options)


def predict_images(
    paths: list[Path],
    model: Path | None,
    backend: str,
    precision: str,
    work_dir: Path,
    *,
    top: int = 5,
    labels: Path | None = None,
    progress: Progress = silent,
) -> Classified:
    """``predict``: the model (or the main job's export, made or reused with the artifact the
    precision needs) and its engine (built or reused) under the work directory's lock, then
    each image classified (predict.classify_with)."""
    from alexnet_deploy.engines.build import build_engine
    from alexnet_deploy.engines.options import BuildOptions
    from alexnet_deploy.predict import (
        Classified,
        classify_with,
        declared_preprocessing,
        image_files,
    )

    files, failed = image_files(paths)
    with directory_lock(work_dir, "predict"):
        if model is None:  # the main job's export, with the artifact this precision needs
            need = artifacts_needed((precision,), ("qdq",), backends=(backend,))
            model, _ = _prepare_artifacts(ModelRequest(), work_dir, progress, need)
        info = read_artifact(model)
        declared_preprocessing(info)  # refused before an engine is built for it
        progress(f"engine: {backend} {precision}")
        # a given model's FP16/INT8 file must exist beside it (build names the command if not)
        engine, _ = build_engine(model, backend, BuildOptions(precision=precision), work_dir)
    progress(f"classifying {len(files)} image(s)")
    predictions = classify_with(engine, backend, info, files, top=top, labels=labels)
    return Classified(failed + predictions, engine, info)


def end_to_end_model(
    request: ModelRequest,
    config: BenchConfig,
    inputs: str,
    work_dir: Path,
    out_dir: Path,
    *,
    progress: Progress = silent,
) -> tuple[list[EndToEndRow], dict[str, Path], list[NotMeasured]]:
    """``bench --end-to-end``: the artifacts the matrix's precisions need, then each of its
    backends and precisions from image bytes to label, per preprocessing placement; the table
    written beside the bench reports (bench.end_to_end.end_to_end_report); the placements
    left out for this model, with why."""
    from alexnet_deploy.bench.end_to_end import end_to_end_report
    from alexnet_deploy.fileio import prepare_output

    prepare_output(Path(out_dir) / "end-to-end.json", force=True, what="report", option="--out")
    need = artifacts_needed(config.matrix.precisions, ("qdq",))
    with directory_lock(work_dir, "bench"):
        model, _ = _prepare_artifacts(request, work_dir, progress, need)
        return end_to_end_report(
            model,
            config.matrix.backends,
            config.matrix.precisions,
            inputs,
            work_dir,
            out_dir,
            min_seconds=config.rules.min_seconds,
            max_seconds=config.rules.max_seconds,
            progress=progress,
        )
