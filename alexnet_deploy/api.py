"""The Python API: what a script, a notebook or a CI job calls, one function per command.

Each takes paths (``str`` or ``os.PathLike``) and options (plain values and the package's own
config dataclasses), returns the typed record the command renders, and raises
:class:`~alexnet_deploy.errors.AlexnetDeployError` (:class:`~alexnet_deploy.errors.UsageError`
for a bad option) with a message and a hint where the command prints ``Error: ...``. The
commands (alexnet_deploy/cli) call these same functions. Listed in docs/api.md::

    from alexnet_deploy import api

    run = api.bench("model.onnx", config, data="images")   # a BenchRun: typed rows
    result = api.gate("baseline", "current")              # a GateResult: truthy on pass

Heavy modules (torch, onnx, ONNX Runtime) are imported inside each function: importing this
module is cheap.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from alexnet_deploy import constants as C
from alexnet_deploy.models.variants import DEFAULT_VARIANT
from alexnet_deploy.progress import Progress, silent

if TYPE_CHECKING:
    from alexnet_deploy.bench.config import BenchConfig, MeasureRules
    from alexnet_deploy.bench.pipeline import BenchOptions, BenchRun
    from alexnet_deploy.calib.pipeline import CalibrationReport
    from alexnet_deploy.calib.stage import DataRequest
    from alexnet_deploy.engines.base import Engine
    from alexnet_deploy.engines.options import BuildOptions
    from alexnet_deploy.exporter.config import ExportConfig
    from alexnet_deploy.exporter.pipeline import ExportResult
    from alexnet_deploy.gate.compare import GateResult
    from alexnet_deploy.models.variants import Variant
    from alexnet_deploy.precision.compare import Comparison
    from alexnet_deploy.precision.planner import PlanOutcome, PlanRequest
    from alexnet_deploy.predict import Classified
    from alexnet_deploy.serve.package import Repository
    from alexnet_deploy.serve.triton_config import ServingOptions

__all__ = [
    "bench",
    "build",
    "calibrate",
    "compare",
    "export",
    "gate",
    "package",
    "plan",
    "predict",
]

PathLike = str | os.PathLike[str]


def _path(value: PathLike | None) -> Path | None:
    return None if value is None else Path(value)


def _data_request(data: PathLike | DataRequest) -> DataRequest:
    """A DataRequest as given, or one for a folder, an array file, 'shipped' or 'synthetic'."""
    from alexnet_deploy.calib.stage import DataRequest

    return data if isinstance(data, DataRequest) else DataRequest(data=os.fspath(data))


def export(
    output: PathLike | None = None,
    *,
    variant: str | Variant = DEFAULT_VARIANT,
    weights: PathLike | None = None,
    seed: int = C.DEFAULT_SEED,
    config: ExportConfig | None = None,
    force: bool = False,
    progress: Progress = silent,
    work_dir: PathLike = C.DEFAULT_WORK_DIR,
) -> ExportResult:
    """Export a variant ("torchvision", "paper"; or a user's model, models.user.user_variant:
    ``export --from``) to ONNX with a dynamic batch axis and validate it against PyTorch.

    Takes the ONNX file to write (default: ``WORK_DIR/MODEL-NAME.onnx``); ``weights``, a
    state-dict checkpoint (None: weights from ``seed``, labelled untrained); ``config``, the
    opset, softmax and baked-in preprocessing (exporter.config.ExportConfig); ``force`` replaces
    a file this tool wrote. Returns the ExportResult (path, sha256, comparison with PyTorch per
    batch); raises AlexnetDeployError: a bad checkpoint, an existing output, outputs off tolerance.
    """
    from alexnet_deploy.artifacts import WorkDir
    from alexnet_deploy.exporter.pipeline import export_onnx
    from alexnet_deploy.models.variants import Variant, get_variant

    spec = variant if isinstance(variant, Variant) else get_variant(variant)
    out = _path(output) or WorkDir(work_dir).model(spec.model_name)
    return export_onnx(
        spec, out, weights=_path(weights), seed=seed, config=config, force=force, progress=progress
    )


def calibrate(
    model: PathLike,
    data: PathLike | DataRequest = "shipped",
    *,
    method: str = "minmax",
    targets: Sequence[str] | None = None,
    output: str | None = None,
    max_top1_drop: float = C.DEFAULT_MAX_TOP1_DROP,
    trt_cache: bool = True,
    force: bool = False,
    progress: Progress = silent,
) -> CalibrationReport:
    """Calibrate ``model`` (an FP32 export) once on real images and write its INT8 Q/DQ files
    (``alexnet-deploy calibrate``).

    Takes the images (a folder, a .npy/.npz file, "shipped", "synthetic", or a
    calib.stage.DataRequest with sizes, labels and held-out data); ``method`` (minmax, entropy,
    percentile, or auto: each, the most faithful kept per target); ``targets`` (default both:
    "tensorrt" and "cpu", this CPU's form; or "cpu-CLASS"); ``output`` ('{target}' in it is
    replaced; default beside the model). Returns the CalibrationReport: the files written, each
    candidate's fidelity against FP32, and ``failures``, the forms whose top-1 drop exceeds
    ``max_top1_drop`` (the command exits 1 on them). Raises AlexnetDeployError for unreadable
    data, a model that is not an FP32 export, or an output that exists without ``force``.
    """
    from alexnet_deploy.calib.config import METHODS
    from alexnet_deploy.calib.int8 import TARGETS
    from alexnet_deploy.calib.pipeline import calibrate as calibrate_model

    return calibrate_model(
        Path(model),
        _data_request(data),
        methods=METHODS if method == "auto" else (method,),
        targets=tuple(targets) if targets else TARGETS,
        output=output,
        max_top1_drop=max_top1_drop,
        trt_cache=trt_cache,
        force=force,
        progress=progress,
    )


def build(
    model: PathLike,
    backend: str = "ort",
    options: BuildOptions | None = None,
    *,
    work_dir: PathLike = C.DEFAULT_WORK_DIR,
    rebuild: bool = False,
) -> tuple[Engine, bool]:
    """Build (or reuse, cached by content in ``work_dir``) an engine of ``model`` for a
    backend: ort, openvino, torch, tensorrt, ort-cuda (``alexnet-deploy build``).

    Takes the FP32 export (its FP16/INT8 files are found beside it) or an artifact;
    ``options`` (engines.options.BuildOptions: precision, threads, batch, runtime settings;
    default: the file's own precision). Returns ``(engine, reused)``: the Engine (its file and
    sidecar) and whether it was already built. Raises AlexnetDeployError when the backend is
    unavailable here, the artifact for the precision is missing, or the build fails.
    """
    from alexnet_deploy.engines.build import build_engine
    from alexnet_deploy.engines.options import BuildOptions
    from alexnet_deploy.onnx_model import read_artifact

    options = options or BuildOptions(precision=read_artifact(model).precision)
    return build_engine(Path(model), backend, options, Path(work_dir), rebuild=rebuild)


def bench(
    model: PathLike | None = None,
    config: BenchConfig | None = None,
    *,
    data: str = "shipped",
    seed: int = C.DEFAULT_SEED,
    work_dir: PathLike = C.DEFAULT_WORK_DIR,
    out: PathLike | None = None,
    variant: str = DEFAULT_VARIANT,
    weights: PathLike | None = None,
    options: BenchOptions | None = None,
    progress: Progress = silent,
    progress_bar=None,
) -> BenchRun:
    """Benchmark ``model`` over a matrix (``alexnet-deploy bench``; no model: the main job,
    exporting ``variant`` from ``weights`` or ``seed``), its FP16/INT8 artifacts made or reused.

    Takes ``config`` (bench.config.BenchConfig: the Matrix of backends x precisions x batches
    x modes..., and the MeasureRules; default: every available backend and precision);
    ``data``, the calibration and fidelity images; ``out``, the report directory (default
    ``WORK_DIR/reports``); ``options`` (bench.pipeline.BenchOptions: timed ``inputs``,
    ``direct``, ``roofline``...). Returns the BenchRun: ``result.rows`` (typed BenchRow records:
    ``case``, ``p50_ms``, ``images_per_s``, ``fidelity``, ``stability``...), ``report`` (its
    ``status``, comparisons) and the report files. A configuration that fails is a row with
    status "failed" and its reason, not an exception. Raises AlexnetDeployError before any
    measurement for a bad matrix, model, data or output directory.
    """
    from alexnet_deploy.artifacts import WorkDir
    from alexnet_deploy.bench.config import BenchConfig
    from alexnet_deploy.workflow import ModelRequest, bench_model

    work = Path(work_dir)
    request = ModelRequest(
        model=_path(model), variant=variant, weights=_path(weights), seed=seed, data=data
    )
    return bench_model(
        request,
        config or BenchConfig(),
        work,
        _path(out) or WorkDir(work).reports,
        options,
        progress=progress,
        progress_bar=progress_bar,
    )


def gate(
    baseline: PathLike,
    current: PathLike | None = None,
    *,
    work_dir: PathLike = C.DEFAULT_WORK_DIR,
    progress: Progress = silent,
    **request,
) -> GateResult:
    """Judge a bench report against a baseline (``alexnet-deploy gate``).

    Takes the baseline (a bench report file or directory, a directory of past reports, or a
    ratio baseline) and the current report; ``request``, the rest of gate.modes.GateRequest:
    ``thresholds`` (gate.thresholds.Thresholds), ``ratios``, ``run`` (bench the baseline's
    configurations now), ``model`` (paired: the current FP32 model, measured interleaved with
    the baseline's), ``measure_noise``, ``allow_env_mismatch``, ``update_baseline`` (once judged, CURRENT replaces
    the baseline atomically, as ``--update-baseline`` does). Returns the GateResult: truthy
    on pass, ``exit_code`` (0 pass, 1 regression, 2 nothing comparable), ``verdicts``,
    ``summary()``. Raises UsageError for reports that do not compare (another environment
    without ``allow_env_mismatch``) or a request that makes no sense.
    """
    from alexnet_deploy.gate.modes import GateRequest, accept_current, check_gate_outputs, run_gate
    from alexnet_deploy.workflow import gate_makers

    asked = GateRequest(Path(baseline), _path(current), work_dir=Path(work_dir), **request)
    check_gate_outputs(asked)  # before any work
    result = run_gate(asked, gate_makers(asked.work_dir, progress), progress=progress)
    if asked.update_baseline:  # the judged report becomes the baseline, whatever the verdict
        accept_current(asked)
    return result


def compare(
    reference: PathLike,
    candidate: PathLike,
    data: str = "shipped",
    *,
    count: int | None = None,
    runtime: str = "emulated",
    batch_size: int = 8,
    seed: int = C.DEFAULT_SEED,
    profile_runs: int = 0,
    progress: Progress = silent,
) -> Comparison:
    """Where ``candidate`` (an FP16, BF16 or INT8 artifact of ``reference``) loses precision,
    layer by layer, on real images (``alexnet-deploy compare``).

    Takes up to ``count`` images of ``data``; ``runtime`` (emulated: the file as written;
    ort or openvino: as that runtime executes it); ``profile_runs`` > 0 also times each layer
    with the runtime's profiler. Returns the Comparison: per layer cosine, SNR, max error and
    INT8 clip rate, then the logits' agreement. Raises UsageError for a candidate not made from
    the reference, an unknown runtime or unreadable images.
    """
    from alexnet_deploy.precision.compare import compare_artifacts

    return compare_artifacts(
        Path(reference),
        Path(candidate),
        data,
        count=count,
        runtime=runtime,
        batch_size=batch_size,
        seed=seed,
        profile_runs=profile_runs,
        progress=progress,
    )


def plan(
    model: PathLike,
    data: PathLike | DataRequest = "shipped",
    request: PlanRequest | None = None,
    *,
    out: PathLike | None = None,
    work_dir: PathLike = C.DEFAULT_WORK_DIR,
    rules: MeasureRules | None = None,
    force: bool = False,
    plot: PathLike | None = None,
    progress: Progress = silent,
) -> PlanOutcome:
    """The fastest per-layer precision plan of ``model`` within an accuracy budget
    (``alexnet-deploy plan``).

    Takes the calibration images (or a calib.stage.DataRequest with ``eval_data``, the
    held-out images the budget is judged on); ``request`` (precision.planner.PlanRequest:
    target, backends, batches, ``max_top1_drop``, layers kept float...); ``rules``, how plans
    are timed (bench.config.MeasureRules); ``out``, the directory of the plan file (default
    ``WORK_DIR/reports/plan-STEM``). Writes the chosen plan's ONNX file (``outcome.written``)
    and ``plot``; precision.plan_report.write_plan_report(outcome, out) writes plan.json,
    .csv and .md. Returns the PlanOutcome: each layer's sensitivity, every plan evaluated, the
    one chosen and why. Raises AlexnetDeployError for bad data, a bad request, or outputs
    that exist without ``force``.
    """
    from alexnet_deploy.artifacts import WorkDir
    from alexnet_deploy.bench.config import MeasureRules
    from alexnet_deploy.precision.planner import PlanRequest, plan_precision

    work = Path(work_dir)
    outcome = plan_precision(
        Path(model),
        _data_request(data),
        request or PlanRequest(),
        out_dir=_path(out) or WorkDir(work).plan_reports(Path(model)),
        work_dir=work,
        rules=rules or MeasureRules(),
        force=force,
        plot=_path(plot),
        progress=progress,
    )
    if plot is not None:
        from alexnet_deploy.precision.plan_report import plot_plans

        plot_plans(outcome, Path(plot))
    return outcome


def predict(
    images: Sequence[PathLike],
    model: PathLike | None = None,
    *,
    backend: str = "ort",
    precision: str = "fp32",
    top: int = 5,
    labels: PathLike | None = None,
    work_dir: PathLike = C.DEFAULT_WORK_DIR,
    progress: Progress = silent,
) -> Classified:
    """Classify image files (and the images in folders) with an engine of ``model`` (None: the
    main job's export, made if needed) (``alexnet-deploy predict``).

    Takes the backend and precision to run, how many classes per image, and ``labels`` (one
    class name per line; default ImageNet-1k's for a 1000-class model). Returns Classified:
    ``predictions`` (a predict.Prediction per image: top classes with probabilities, seconds
    per stage, or the ``error`` of a file that could not be read), the ``engine`` and the
    model's ``info``. Raises AlexnetDeployError for a model that does not declare its
    preprocessing, or an engine that cannot be built.
    """
    from alexnet_deploy.workflow import predict_images

    return predict_images(
        [Path(p) for p in images],
        _path(model),
        backend,
        precision,
        Path(work_dir),
        top=top,
        labels=_path(labels),
        progress=progress,
    )


def package(
    out: PathLike,
    model: PathLike | None = None,
    *,
    options: ServingOptions | None = None,
    openvino: bool = True,
    server_tensorrt: str | None = None,
    work_dir: PathLike = C.DEFAULT_WORK_DIR,
    force: bool = False,
    progress: Progress = silent,
) -> Repository:
    """A Triton Inference Server model repository in ``out`` from ``model``'s artifacts (None:
    the main job's export, made if needed) (``alexnet-deploy package --triton``).

    Takes ``options`` (serve.triton_config.ServingOptions: max batch, instances, threads);
    ``server_tensorrt``, the target server's TensorRT version (plans it cannot run are
    refused); ``force`` replaces only a repository this tool made. Returns the Repository: its
    models with their config.pbtxt, notes and what was skipped. Raises UsageError, before any
    work, for an ``out`` that would destroy an input or a directory this tool did not make.
    """
    from alexnet_deploy.serve.package import check_repository
    from alexnet_deploy.serve.triton_config import ServingOptions
    from alexnet_deploy.workflow import package_model

    out, model, work = Path(out), _path(model), Path(work_dir)
    check_repository(out, model, work_dir=work, force=force)  # before any export
    return package_model(
        model,
        out,
        work_dir=work,
        progress=progress,
        options=options or ServingOptions(),
        force=force,
        openvino=openvino,
        server_tensorrt=server_tensorrt,
    )
