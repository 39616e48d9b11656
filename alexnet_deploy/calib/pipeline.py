"""The calibrate stage: FP32 ONNX + data -> INT8 Q/DQ models per target, a legacy TensorRT
cache, a data manifest and a fidelity report (the FP16 stage: calib/fp16.py).

Artifacts appear only when complete and within the fidelity budget (temporary file, checks,
rename); the report is written either way so a failure can be read.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from alexnet_deploy import constants as C
from alexnet_deploy.artifacts import ArtifactSet
from alexnet_deploy.calib.config import CalibrationConfig
from alexnet_deploy.calib.fidelity import (
    BASES,
    EMULATED,
    Fidelity,
    compare_logits,
    fidelity_by_basis,
    logits_on,
    ort_logits,
)
from alexnet_deploy.calib.float_report import float_tensors
from alexnet_deploy.calib.int8 import TARGETS, Int8Recipe, quantize_to_file, resolve_target
from alexnet_deploy.calib.ranges import Ranges, collect_ranges
from alexnet_deploy.calib.samples import CalibrationData
from alexnet_deploy.calib.stage import (
    DataRequest,
    budget_policy,
    check_input_model,
    write_artifact_metadata,
)
from alexnet_deploy.calib.tensorrt_check import check_tensorrt_qdq
from alexnet_deploy.calib.trt_cache import write_trt_cache
from alexnet_deploy.errors import UsageError
from alexnet_deploy.fileio import (
    atomic_path,
    require_free_space,
    sha256_file,
    write_json_atomic,
)
from alexnet_deploy.locking import directory_lock
from alexnet_deploy.onnx_model import read_artifact
from alexnet_deploy.outputs import check_outputs
from alexnet_deploy.progress import Progress

log = logging.getLogger(__name__)


@dataclass
class Candidate:
    method: str
    target: str
    fidelity: Fidelity  # on the basis that judges this target (``basis``)
    calibration_seconds: float
    cached: bool
    collapsed_to_minmax: bool
    basis: str = EMULATED
    selected: bool = False
    within_budget: bool = True
    figures: dict[str, Fidelity] = field(default_factory=dict)  # every basis, selected only


@dataclass
class CalibrationReport:
    model: Path
    data: CalibrationData
    candidates: list[Candidate]
    artifacts: dict[str, Path] = field(default_factory=dict)  # target -> written model
    trt_cache: Path | None = None
    report_path: Path | None = None
    budget_enforced: bool = True
    budget_note: str = ""
    failures: list[str] = field(default_factory=list)
    # target -> what its INT8 form left in float, and why (calib/float_report.py)
    float_tensors: dict[str, list[dict]] = field(default_factory=dict)

    def rows(self) -> list[dict]:
        rows = []
        for c in self.candidates:
            f = c.fidelity
            rows.append(
                {
                    "method": c.method,
                    "target": c.target,
                    "selected": c.selected,
                    "top1_fp32": f.reference_top1_accuracy,
                    "top1_int8": f.top1_accuracy,
                    "top1_agreement": f.top1_agreement,
                    "top5_overlap": f.top5_overlap,
                    "centered_cosine": f.centered_cosine,
                    "max_abs_error": f.max_abs_error,
                    "top1_drop_points": f.top1_drop_points(),
                    "within_budget": c.within_budget,
                    "judged_on": c.basis,
                    **{
                        f"{basis}_{key}": getattr(fig, attr)
                        for basis, fig in c.figures.items()
                        for key, attr in (
                            ("top1", "top1_accuracy"),
                            ("agreement", "top1_agreement"),
                        )
                    },
                    "calibration_seconds": c.calibration_seconds,
                    "ranges_cached": c.cached,
                    "entropy_equals_minmax": c.collapsed_to_minmax,
                    "synthetic_data": self.data.synthetic,
                }
            )
        return rows


def resolve_outputs(model: Path, output: str | None, targets: tuple[str, ...]) -> dict[str, Path]:
    """Output path per target. ``output`` may hold '{target}'; without it, one target only.
    The default is the model's artifact set (MODEL_DIR/STEM.int8-<target>.onnx)."""
    if output is None:
        paths = {t: ArtifactSet(model).int8(t) for t in targets}
    elif "{target}" in output:
        paths = {t: Path(output.replace("{target}", t)) for t in targets}
    elif len(targets) == 1:
        paths = {targets[0]: Path(output)}
    else:
        raise UsageError(
            f"-o {output} names one file but {len(targets)} targets are written",
            hint="put '{target}' in the name (e.g. -o work/m-{target}.onnx) or pass one --target",
        )
    return paths


def output_files(model: Path, output: str | None, paths: dict[str, Path], trt_cache: bool):
    """Every file a calibration writes, by label, for the output checks (outputs.py): the
    INT8 models, the report (named after them: it never describes another run's files) and
    the legacy TensorRT cache."""
    siblings = ArtifactSet(model)
    files = {f"-o ({t})" if len(paths) > 1 else "-o": p for t, p in paths.items()}
    files["report"] = siblings.int8_report_for(output, next(iter(paths.values())).parent)
    if trt_cache and "tensorrt" in paths:
        files["TensorRT cache"] = siblings.trt_cache_for(paths["tensorrt"])
    return files


def _cpu_model() -> str:
    from alexnet_deploy.sysinfo import cpu_info

    return str(cpu_info()["model"])


def _pick(candidates: list[Candidate]) -> Candidate:
    """Most faithful to FP32: top-1 agreement, then centered cosine. (Not accuracy: an INT8
    model that beats FP32 on a small held-out set is noise, not fidelity.)"""
    return max(candidates, key=lambda c: (c.fidelity.top1_agreement, c.fidelity.centered_cosine))


def judging_basis(kind: str, recipe: Int8Recipe, machine_isa: str) -> str:
    """The figure that decides a form's budget. TensorRT's form: the emulated one (TensorRT
    computes what the file means, not what this CPU's int8 kernels give). A CPU form for this
    machine's class: ONNX Runtime as executed here, the embedded default runtime. A CPU form
    for another class: emulated, the only figure this machine can give for that class."""
    if kind == "cpu" and recipe.isa == machine_isa:
        return "ort"
    return EMULATED


def calibrate(
    model_path: Path,
    request: DataRequest,
    *,
    methods: tuple[str, ...] = ("minmax",),
    targets: tuple[str, ...] = TARGETS,
    output: str | None = None,
    max_top1_drop: float = C.DEFAULT_MAX_TOP1_DROP,
    cache_dir: Path | None = None,
    trt_cache: bool = True,
    force: bool = False,
    progress: Progress = lambda _m: None,
) -> CalibrationReport:
    """Calibrate once per method, quantize per target, keep the most faithful method per target."""
    import onnx

    from alexnet_deploy.cpu_isa import this_cpu

    for method in methods:
        CalibrationConfig.named(method)
    machine = this_cpu()
    recipes: dict[str, Int8Recipe] = {}
    for name in targets:
        kind, recipe = resolve_target(name, machine.name)
        if kind in recipes and recipes[kind] != recipe:
            raise UsageError(
                f"--target {name} asks for a second {kind} form; one file holds one form",
                hint="calibrate once per CPU class (each run writes STEM.int8-cpu.onnx)",
            )
        recipes[kind] = recipe
    targets = tuple(recipes)
    if "cpu" in recipes and machine.name == "portable":
        log.warning(
            "CPU feature detection found no int8 class it knows (%s): writing the portable CPU "
            "form (reduce-range), faithful on every kernel",
            machine.reason,
        )
    bases = {t: judging_basis(t, r, machine.name) for t, r in recipes.items()}
    if max_top1_drop < 0:
        raise UsageError(f"--max-top1-drop must be >= 0, got {max_top1_drop}")
    model_path = Path(model_path)
    info = read_artifact(model_path)
    check_input_model(info)
    request = request.for_model(info)
    outputs = resolve_outputs(model_path, output, targets)
    files = output_files(model_path, output, outputs, trt_cache)
    inputs = {"input model": model_path, **request.inputs()}
    check_outputs("calibrate", files, inputs, force=force)
    out_dir = next(iter(outputs.values())).parent  # the report and cache go beside the models
    # ONNX Runtime's shape-inferred copy (FP32 size) and every candidate and output (Q/DQ INT8:
    # about a quarter of FP32, plus scales): a full disk would otherwise leave a truncated
    # copy that fails later as a parse error
    require_free_space(
        out_dir,
        int(model_path.stat().st_size * (1 + 0.3 * (len(methods) + 1) * len(targets))),
        what="calibration's scratch files and INT8 models",
    )
    report_path = files["report"]
    scratch_root = ArtifactSet(model_path).scratch_root(out_dir)

    progress("loading calibration data")
    data = request.load(info)
    cache_dir = cache_dir or scratch_root / "calibration"
    model_sha = sha256_file(model_path)
    progress(f"FP32 reference on {len(data.eval)} held-out samples")
    reference = ort_logits(model_path, info.input.name, data.eval.images, request.batch_size)
    labels = data.eval.labels
    # the range cache, the scratch files and the outputs: one calibration at a time per directory
    with directory_lock(scratch_root, "calibrate"):
        check_outputs("calibrate", files, inputs, force=force)  # written while this run waited?
        candidates: list[Candidate] = []
        written: dict[tuple[str, str], Path] = {}
        ranges_by_method: dict[str, Ranges] = {}
        # a directory of this run's own: candidates of two concurrent calibrations never collide,
        # and ONNX Runtime's quantizer writes its shape-inferred copy (STEM-inferred.onnx) beside
        # the link to the model here, not beside the model (which may be on a read-only volume)
        scratch_root.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(dir=scratch_root, prefix="int8-run-"))
        source = scratch / model_path.name
        source.symlink_to(model_path.resolve())
        try:
            for method in methods:
                config = CalibrationConfig.named(method)
                progress(f"calibrating: {method} on {len(data.calib)} samples")
                ranges = collect_ranges(
                    source,
                    model_sha,
                    info.input.name,
                    data.calib,
                    data.key(),
                    config,
                    cache_dir,
                    request.batch_size,
                )
                ranges_by_method[method] = ranges
                if ranges.collapsed_to_minmax:
                    log.warning(
                        "%s calibration gave the min/max range for every tensor (too few bins or too little data)",
                        method,
                    )
                for target in targets:
                    progress(f"quantizing: {method} -> {target}")
                    tmp = scratch / f"{model_path.stem}.{method}.{target}.onnx"
                    quantize_to_file(source, ranges, recipes[target], tmp)
                    logits = logits_on(
                        bases[target], tmp, info.input.name, data.eval.images, request.batch_size
                    )
                    candidates.append(
                        Candidate(
                            method,
                            target,
                            compare_logits(reference, logits, labels),
                            ranges.seconds,
                            ranges.cached,
                            ranges.collapsed_to_minmax,
                            basis=bases[target],
                        )
                    )
                    written[(method, target)] = tmp

            enforced, note = budget_policy(info, data)
            report = CalibrationReport(
                model_path, data, candidates, budget_enforced=enforced, budget_note=note
            )
            for c in candidates:
                c.within_budget = c.fidelity.top1_drop_points() <= max_top1_drop
            for target in targets:
                best = _pick([c for c in candidates if c.target == target])
                best.selected = True
                progress(f"{target}: fidelity emulated and as executed on this CPU")
                best.figures = {
                    best.basis: best.fidelity,
                    **fidelity_by_basis(
                        written[(best.method, target)],
                        info.input.name,
                        data.eval.images,
                        request.batch_size,
                        reference,
                        labels,
                        bases=tuple(b for b in BASES if b != best.basis),
                    ),
                }
                if enforced and not best.within_budget:
                    report.failures.append(
                        f"{target}: top-1 drops {best.fidelity.top1_drop_points():.2f} points against FP32 "
                        f"(budget {max_top1_drop:g}, {best.basis} figure) with the best method, {best.method}"
                    )
                    continue
                progress(f"writing {outputs[target].name}")
                proto = onnx.load(str(written[(best.method, target)]))
                if target == "tensorrt":
                    check_tensorrt_qdq(proto)
                report.float_tensors[target] = [f.as_dict() for f in float_tensors(proto)]
                recipe = recipes[target]
                write_artifact_metadata(
                    proto,
                    {
                        "precision": "int8",
                        "int8_target": target,
                        **({"int8_isa": recipe.isa} if recipe.isa else {}),
                        "int8_recipe": recipe.describe(),
                        "fidelity_basis": best.basis,
                        "calibration_method": best.method,
                        "calibration_data": data.kind,
                        "calibration_data_key": data.key(),
                        "calibration_source_key": request.source_key(),
                        "synthetic_calibration": str(data.synthetic).lower(),
                        "source_sha256": model_sha,
                    },
                )
                with atomic_path(outputs[target], replace=force) as tmp:
                    onnx.save(proto, str(tmp))
                report.artifacts[target] = outputs[target]

            if trt_cache and "tensorrt" in targets:
                chosen = next(c for c in candidates if c.target == "tensorrt" and c.selected)
                report.trt_cache = write_trt_cache(
                    ranges_by_method[chosen.method].load(),
                    files["TensorRT cache"],
                    ArtifactSet(model_path).source_sha256(),
                )
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

        report.report_path = write_json_atomic(
            report_path,
            {
                "schema": "alexnet-deploy/calibration-report/1",
                "model": str(model_path),
                "model_sha256": model_sha,
                "data": data.manifest(),
                "data_key": data.key(),
                "methods": {
                    m: {**r.config.as_dict(), "ranges_cache": str(r.path), "seconds": r.seconds}
                    for m, r in ranges_by_method.items()
                },
                "recipes": {t: recipes[t].describe() for t in targets},
                "cpu": {**machine.as_dict(), "model": _cpu_model()},
                "fidelity": {
                    c.target: {
                        "judged_on": c.basis,
                        "figures": {b: f.as_dict() for b, f in c.figures.items()},
                    }
                    for c in candidates
                    if c.selected
                },
                "max_top1_drop": max_top1_drop,
                "budget_enforced": enforced,
                "budget_note": note,
                "rows": report.rows(),
                "artifacts": {
                    t: {"path": str(p), "sha256": sha256_file(p)}
                    for t, p in report.artifacts.items()
                },
                "trt_cache": None if report.trt_cache is None else str(report.trt_cache),
                "failures": report.failures,
                "float_tensors": report.float_tensors,
            },
        )
        return report
