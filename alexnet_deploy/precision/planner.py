"""``plan``: the fastest per-layer precision plan within an accuracy budget.

One calibration pass (calibrate's range cache, reused), then per weight layer its sensitivity
(the network's emulated top-1 with that layer alone kept float, and with it alone INT8), the
candidate plans (greedy from the sensitivities, or all 2^n with ``exhaustive``), each plan's
emulated fidelity on the held-out images (what the file means: the same on every CPU), then
bench's measurement of the plans on the accuracy/cost front that meet the budget, beside
all-INT8, all-FP32 and (optionally) NNCF's accuracy-controlled model. The fastest plan within
the budget is written with its layer -> precision map in the file's metadata.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from alexnet_deploy import constants as C
from alexnet_deploy.artifacts import ArtifactSet
from alexnet_deploy.calib.fidelity import EMULATED, compare_logits, logits_on, ort_logits
from alexnet_deploy.errors import AlexnetDeployError, UsageError
from alexnet_deploy.onnx_model import read_artifact
from alexnet_deploy.outputs import OutputDir, check_outputs, mark_directory
from alexnet_deploy.precision.plans import (
    KEEP_PRECISIONS,
    Plan,
    WeightLayer,
    resolve_layers,
    weight_layers,
    write_plan_file,
)
from alexnet_deploy.precision.search import (
    Evaluated,
    Sensitivity,
    candidate_plans,
    greedy_order,
    sensitivities,
    to_measure,
)
from alexnet_deploy.precision.speed import SpeedTarget, measure_speeds, speed_score
from alexnet_deploy.progress import Progress

log = logging.getLogger(__name__)
SPEED_BACKENDS = ("ort", "openvino")
REPORT_FILES = ("plan.json", "plan.csv", "plan.md")  # beside the plan file (plan_report.py)


@dataclass(frozen=True)
class PlanRequest:
    target: str = "cpu"  # the INT8 form planned for: cpu, cpu-<class>, tensorrt
    backends: tuple[str, ...] = ("ort",)
    batches: tuple[int, ...] = C.PLAN_BATCHES
    max_top1_drop: float = C.DEFAULT_MAX_TOP1_DROP
    keep: str = "fp32"  # what "float" means for a layer kept out of INT8
    keep_layers: tuple[str, ...] = ()  # always float
    exhaustive: bool = False
    max_measured: int = C.PLAN_MAX_MEASURED
    rounds: int = C.PLAN_ROUNDS
    nncf: bool = False
    sufficiency: bool = False  # the calibration-sufficiency section
    method: str = "minmax"  # a range method, or auto: the most faithful all-INT8 of them all

    def check(self) -> None:
        from alexnet_deploy.calib.config import METHODS

        if self.method not in (*METHODS, "auto"):
            raise UsageError(f"--method {self.method!r}: one of {', '.join(METHODS)}, auto")
        if self.keep not in KEEP_PRECISIONS:
            raise UsageError(
                f"--keep {self.keep!r}: one of {', '.join(KEEP_PRECISIONS)}",
                hint="what a layer kept out of INT8 runs in",
            )
        if self.max_top1_drop < 0:
            raise UsageError(f"--max-top1-drop must be >= 0, got {self.max_top1_drop}")
        for name in self.backends:
            if name not in SPEED_BACKENDS:
                raise UsageError(
                    f"--backend {name!r} cannot measure plans here",
                    hint=f"choose from: {', '.join(SPEED_BACKENDS)}",
                )
        if self.max_measured < 1 or self.rounds < 1 or any(b < 1 for b in self.batches):
            raise UsageError("--max-measured, --repeat and every --batch must be at least 1")

    def methods(self) -> tuple[str, ...]:
        """The range methods to calibrate with: all of them for auto."""
        from alexnet_deploy.calib.config import METHODS

        return METHODS if self.method == "auto" else (self.method,)


@dataclass
class PlanOutcome:
    model: Path
    form: str  # the file's INT8 form: cpu or tensorrt
    recipe: str
    isa: str | None  # the CPU class a CPU form is for
    layers: list[WeightLayer]
    request: PlanRequest
    measure: str  # "top-1 accuracy" or "top-1 agreement with FP32" (no labels)
    samples: int
    sensitivity: list[Sensitivity]
    evaluated: list[Evaluated]
    references: dict[str, Evaluated] = field(default_factory=dict)  # all-FP32, NNCF
    skipped: dict[str, str] = field(default_factory=dict)  # plan label -> why not measured
    chosen: Evaluated | None = None
    choice_rule: str = ""
    written: Path | None = None
    notes: list[str] = field(default_factory=list)
    sufficiency: object | None = None  # precision.sufficiency.Sufficiency
    method: str = ""  # the range method planned with (auto: the one chosen)
    method_drops: dict[str, float] = field(default_factory=dict)  # method -> all-INT8 drop


def _plan_key(plan: Plan, keep: str) -> str:
    return hashlib.sha256((keep + "|" + ",".join(sorted(plan.float_layers))).encode()).hexdigest()[
        :12
    ]


def plan_precision(
    model_path: Path,
    data_request,
    request: PlanRequest,
    *,
    out_dir: Path,
    work_dir: Path,
    rules,
    force: bool = False,
    plot: Path | None = None,
    progress: Progress = lambda _m: None,
) -> PlanOutcome:
    from alexnet_deploy.calib.config import CalibrationConfig
    from alexnet_deploy.calib.int8 import resolve_target
    from alexnet_deploy.calib.ranges import collect_ranges
    from alexnet_deploy.calib.stage import budget_policy, check_input_model
    from alexnet_deploy.cpu_isa import this_cpu
    from alexnet_deploy.fileio import sha256_file
    from alexnet_deploy.locking import directory_lock

    request.check()
    model_path = Path(model_path)
    info = read_artifact(model_path)
    check_input_model(info)
    data_request = data_request.for_model(info)
    machine = this_cpu().name
    form, recipe = resolve_target(request.target, machine)
    layers = weight_layers(model_path)
    forced = resolve_layers(request.keep_layers, layers, "--keep-layer")
    out = ArtifactSet(model_path).plan(form, out_dir)

    def check_paths() -> None:  # before the work, and again once the lock is held
        check_outputs(
            "plan", {"-o": OutputDir(out_dir, (*REPORT_FILES, out.name)), "--plot": plot},
            {"input model": model_path, **data_request.inputs()}, work_dir=work_dir, force=force,
        )  # fmt: skip

    check_paths()
    measurable = form == "cpu" and recipe.isa == machine
    if measurable:
        info.require_dynamic_batch("plans are timed on engines, which need a dynamic batch axis")

    progress("loading calibration and held-out data")
    data = data_request.load(info)
    labels = data.eval.labels
    reference = ort_logits(model_path, info.input.name, data.eval.images, data_request.batch_size)
    scratch_root = ArtifactSet(model_path).scratch_root()
    model_sha = sha256_file(model_path)
    outcome = PlanOutcome(
        model_path, form, recipe.describe(), recipe.isa, layers, request,
        "top-1 accuracy" if labels is not None else "top-1 agreement with FP32 (no labels)",
        len(data.eval), [], [],
    )  # fmt: skip
    if labels is None:
        outcome.notes.append(
            "the held-out images have no labels: the budget is judged on top-1 agreement with "
            "FP32 (disagreement bounds the accuracy lost)"
        )
    with directory_lock(scratch_root, "plan"):
        check_paths()  # another plan may have written them while this one waited
        scratch_root.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(dir=scratch_root, prefix="plan-run-"))
        source = scratch / model_path.name
        source.symlink_to(model_path.resolve())
        try:
            metadata = {
                "int8_target": form,
                **({"int8_isa": recipe.isa} if recipe.isa else {}),
                "int8_recipe": recipe.describe(),
                "fidelity_basis": EMULATED,
                "calibration_method": "",  # the range method's, below
                "calibration_data": data.kind,
                "calibration_data_key": data.key(),
                "synthetic_calibration": str(data.synthetic).lower(),
                "source_sha256": model_sha,
                "precision_plan_budget": f"{request.max_top1_drop:g}",
            }
            enforced, note = budget_policy(info, data)
            budget = request.max_top1_drop if enforced else float("inf")
            if not enforced:
                outcome.notes.append(note + ": every plan counts as within it")
            found: dict[Plan, Evaluated] = {}

            def all_int8_with(method: str):
                """Ranges by ``method``, its all-INT8 file and that file's emulated fidelity."""
                progress(f"calibration ranges ({method}, {len(data.calib)} samples)")
                ranges = collect_ranges(
                    source, model_sha, info.input.name, data.calib, data.key(),
                    CalibrationConfig.named(method), scratch_root / "calibration",
                    data_request.batch_size,
                )  # fmt: skip
                path = scratch / f"ranges-{method}.onnx"  # a scratch file, renamed below
                write_plan_file(
                    source, ranges, recipe, Plan(frozenset()), layers, request.keep, path,
                    {**metadata, "calibration_method": method},
                )  # fmt: skip
                logits = logits_on(
                    EMULATED, path, info.input.name, data.eval.images, data_request.batch_size
                )
                return (
                    ranges,
                    path,
                    Evaluated(Plan(frozenset()), compare_logits(reference, logits, labels)),
                )

            trials = {method: all_int8_with(method) for method in request.methods()}
            outcome.method_drops = {m: evaluated.drop for m, (_, _, evaluated) in trials.items()}
            # the most faithful all-INT8 (ties: the first listed, minmax, the plainest)
            outcome.method = min(trials, key=lambda m: outcome.method_drops[m])
            ranges, trial_file, trial = trials[outcome.method]
            for _, other, _ in trials.values():  # the other methods' files: no disk held for them
                if other != trial_file:
                    other.unlink()
            metadata["calibration_method"] = outcome.method
            if len(trials) > 1:
                drops = ", ".join(f"{m} {d:.2f}" for m, d in outcome.method_drops.items())
                outcome.notes.append(
                    f"--method auto: all-INT8 drop per range method {drops} points; planned with "
                    f"{outcome.method}, the most faithful (ties go to the first listed)"
                )

            def path_of(plan: Plan) -> Path:
                return scratch / f"plan-{_plan_key(plan, request.keep)}.onnx"

            def file_of(plan: Plan) -> Path:
                """The plan's file in the scratch directory, (re)written when absent."""
                path = path_of(plan)
                if not path.is_file():
                    write_plan_file(
                        source, ranges, recipe, plan, layers, request.keep, path, metadata
                    )
                return path

            def evaluate(plan: Plan) -> Evaluated:
                if plan not in found:
                    progress(f"plan {len(found) + 1}: {plan.label(layers)}")
                    path = file_of(plan)
                    logits = logits_on(
                        EMULATED, path, info.input.name, data.eval.images, data_request.batch_size
                    )
                    found[plan] = Evaluated(plan, compare_logits(reference, logits, labels))
                    if found[plan].drop > budget + 1e-9 and plan.float_layers:
                        path.unlink()  # never measured nor written: no disk held for it
                return found[plan]

            trial_file.replace(path_of(trial.plan))
            found[trial.plan] = all_int8 = trial
            outcome.sensitivity = sensitivities(layers, evaluate, all_int8)
            order = greedy_order(layers, outcome.sensitivity)
            for plan in candidate_plans(layers, order, forced, request.exhaustive):
                evaluate(plan)
            candidates = [e for e in found.values() if forced <= e.plan.float_layers]
            outcome.evaluated = list(found.values())
            within = [e for e in candidates if e.drop <= budget + 1e-9]
            if not within:
                best = min(candidates, key=lambda e: e.drop)
                raise AlexnetDeployError(
                    f"no precision plan meets the budget of {budget:g} points ({outcome.measure}): "
                    f"the best, {best.plan.label(layers)}, drops {best.drop:.2f}; nothing written",
                    hint="raise --max-top1-drop, calibrate on more representative images, or "
                    "keep float layers in fp32 (--keep fp32)",
                )
            chosen, outcome.skipped = to_measure(candidates, layers, budget, request.max_measured)
            if measurable:
                _measure(
                    outcome, chosen, all_int8, file_of, scratch, model_path, request, work_dir, rules,
                    data, budget, compare_logits(reference, reference, labels), progress,
                )  # fmt: skip
            else:
                pick = min(within, key=lambda e: (e.plan.float_macs(layers), e.drop))
                outcome.chosen = pick
                outcome.choice_rule = (
                    f"fewest float MACs within the budget: the {form} form"
                    f"{'' if form == 'tensorrt' else f' for {recipe.isa} CPUs'} cannot be timed "
                    f"on this {machine} CPU (TensorRT needs an NVIDIA GPU)"
                )
            if request.sufficiency:
                from alexnet_deploy.precision.sufficiency import calibration_sufficiency

                outcome.sufficiency = calibration_sufficiency(
                    source, ranges, recipe, data, reference, labels, request.max_top1_drop,
                    scratch, input_name=info.input.name, batch_size=data_request.batch_size,
                    progress=progress,
                )  # fmt: skip
                outcome.notes.append(outcome.sufficiency.note)
            outcome.written = _write(file_of(outcome.chosen.plan), out, force)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return outcome


def _measure(
    outcome: PlanOutcome, chosen, all_int8, file_of, scratch, model_path, request, work_dir,
    rules, data, budget, exact, progress,
) -> None:  # fmt: skip
    layers = outcome.layers
    targets = [SpeedTarget("all-FP32", model_path, "fp32")]
    labelled = {}
    for e in [all_int8, *chosen]:
        label = e.plan.label(layers)
        if label not in labelled:
            labelled[label] = e
            targets.append(SpeedTarget(label, file_of(e.plan), "int8"))
    if request.nncf:
        from alexnet_deploy.precision.nncf_peer import nncf_accuracy_control

        peer, path = nncf_accuracy_control(model_path, data, request, scratch, progress)
        outcome.references["NNCF accuracy control"] = peer
        targets.append(SpeedTarget("NNCF accuracy control", path, "int8", quantizer="nncf"))
    speeds = measure_speeds(
        targets, request.backends, request.batches, work_dir, rules, rounds=request.rounds,
        progress=progress,
    )  # fmt: skip
    fp32 = Evaluated(Plan(frozenset(x.name for x in layers)), exact)
    fp32.speed = speeds["all-FP32"]
    fp32.measured_note = "reference: the FP32 model itself"
    outcome.references = {"all-FP32": fp32, **outcome.references}
    for label, e in labelled.items():
        e.speed = speeds[label]
        e.measured_note = "measured" if e in chosen else "measured as a reference"
    if "NNCF accuracy control" in outcome.references:
        outcome.references["NNCF accuracy control"].speed = speeds["NNCF accuracy control"]
    ranked = [e for e in chosen if e.drop <= budget + 1e-9]
    if request.keep == "fp32":  # the FP32 model is the all-float plan: it may be the fastest
        ranked.append(fp32)
    outcome.chosen = max(ranked, key=lambda e: speed_score(e.speed, fp32.speed))
    outcome.choice_rule = (
        "the fastest measured plan within the budget (all-FP32 included): highest geometric "
        f"mean of images/s over {', '.join(sorted(fp32.speed))}, relative to all-FP32"
    )
    if outcome.chosen is fp32:
        outcome.notes.append(
            "no plan with INT8 layers ran faster than the FP32 model on this machine: the plan "
            "is all-float (INT8 does not pay here at these batch sizes)"
        )


def _write(source: Path, out: Path, force: bool) -> Path:
    """The chosen plan's file (its metadata written with it) moved into place atomically;
    without ``force``, never over a file another run wrote meanwhile."""
    from alexnet_deploy.fileio import atomic_path

    if not out.parent.is_dir():
        out.parent.mkdir(parents=True, exist_ok=True)  # (or a concurrent run of ours)
        mark_directory(out.parent, "plan")  # made by this tool: a later --force may replace it
    with atomic_path(out, replace=force) as tmp:
        shutil.copyfile(source, tmp)
    return out
