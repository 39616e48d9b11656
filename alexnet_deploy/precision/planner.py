"""``plan``: the fastest per-layer precision plan within an accuracy budget.

One calibration pass (calibrate's range cache, reused), then per weight layer its sensitivity
(the network's emulated top-1 with that layer alone kept float, and with it alone INT8; past
C.PLAN_PER_LAYER_MAX layers one-shot, precision/one_shot.py), the candidate plans (greedy from
the sensitivities, a layer or a block at a time, within --max-candidates and --time-budget:
precision/search.py; or all 2^n with ``exhaustive``), each plan's emulated fidelity on the
held-out images (what the file means: the same on every CPU), then
bench's measurement of the plans on the accuracy/cost front that meet the budget, beside
all-INT8, all-FP32 and (optionally) NNCF's accuracy-controlled model (precision/plan_choice.py;
``--keep bf16``: float layers in bf16 through OpenVINO's hint, all-BF16 timed too, docs/bf16.md).
The fastest plan within the budget is written with its layer -> precision map in its metadata.
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
from alexnet_deploy.calib.bf16 import emulated_logits
from alexnet_deploy.calib.fidelity import EMULATED, compare_logits, ort_logits
from alexnet_deploy.errors import AlexnetDeployError, UsageError
from alexnet_deploy.onnx_model import read_artifact
from alexnet_deploy.outputs import OutputDir, check_outputs, mark_directory
from alexnet_deploy.precision.one_shot import one_shot_sensitivity
from alexnet_deploy.precision.plan_choice import chosen_keep, measure_and_choose
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
    SearchLog,
    Sensitivity,
    exhaustive_count,
    search_plans,
    to_measure,
)
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
    max_candidates: int = C.PLAN_MAX_CANDIDATES  # greedy plans evaluated, at most
    time_budget_s: float = C.PLAN_TIME_BUDGET_S  # the search's seconds (sensitivity included)
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
        if self.keep == "bf16":
            bf16_plan_check(self)
        for name in self.backends:
            if name not in SPEED_BACKENDS:
                raise UsageError(
                    f"--backend {name!r} cannot measure plans here",
                    hint=f"choose from: {', '.join(SPEED_BACKENDS)}",
                )
        if self.max_measured < 1 or self.rounds < 1 or any(b < 1 for b in self.batches):
            raise UsageError("--max-measured, --repeat and every --batch must be at least 1")
        if self.max_candidates < 1 or not self.time_budget_s > 0:
            raise UsageError("--max-candidates must be at least 1 and --time-budget above 0")

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
    model_name: str = ""  # ArtifactInfo.model_name: every output names the model
    search: SearchLog | None = None  # how the search went, and what a budget left out


def bf16_plan_check(request: PlanRequest) -> None:
    """``--keep bf16`` runs a plan's float layers in bf16 through OpenVINO's precision hint on
    the file (one setting for the whole model; INT8 layers stay INT8): timed on OpenVINO alone,
    for this CPU's form (a mixed INT8/bf16 file for TensorRT is not made here)."""
    from alexnet_deploy.engines.ort import CPU_HAS_NO_BF16

    if request.target == "tensorrt":
        raise UsageError(
            "--keep bf16 is not planned for --target tensorrt: the plan's float layers would "
            "stay FP32 in the file, and TensorRT runs a file in the types it holds",
            hint="--keep fp16 for TensorRT, or its BF16 artifact ('alexnet-deploy bf16 MODEL')",
        )
    others = [b for b in request.backends if b != "openvino"]
    if others:
        raise UsageError(
            f"--keep bf16 cannot be timed on {others[0]}: its float layers run bf16 through "
            f"OpenVINO's precision hint on the plan's file; on ort they would run in FP32 "
            f"({CPU_HAS_NO_BF16})",
            hint="--backend openvino, or --keep fp32 to time plans on ort",
        )


def default_backends(keep: str) -> tuple[str, ...]:
    """The runtimes that time plans unless given: OpenVINO for bf16, ONNX Runtime else."""
    return ("openvino",) if keep == "bf16" else ("ort",)


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
    from alexnet_deploy.cpu_isa import require_native_bf16, this_cpu
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
    if request.exhaustive:
        exhaustive_count(layers, forced)  # refused past its size, before any work
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
        if request.keep == "bf16":  # timed in bf16 here: never emulated at a loss (cpu_isa)
            require_native_bf16()

    progress("loading calibration and held-out data")
    data = data_request.load(info)
    labels = data.eval.labels
    reference = ort_logits(model_path, info.input.name, data.eval.images, data_request.batch_size)
    scratch_root = ArtifactSet(model_path).scratch_root()
    model_sha = sha256_file(model_path)
    outcome = PlanOutcome(
        model_path, form, recipe.describe(), recipe.isa, layers, request,
        "top-1 accuracy" if labels is not None else "top-1 agreement with FP32 (no labels)",
        len(data.eval), [], [], model_name=info.model_name,
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
                logits = emulated_logits(
                    path, info.input.name, data.eval.images, data_request.batch_size
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

            def path_of(plan: Plan, keep: str = request.keep) -> Path:
                return scratch / f"plan-{_plan_key(plan, keep)}.onnx"

            def file_of(plan: Plan, keep: str = request.keep) -> Path:
                """The plan's file in the scratch directory, (re)written when absent."""
                path = path_of(plan, keep)
                if not path.is_file():
                    write_plan_file(source, ranges, recipe, plan, layers, keep, path, metadata)
                return path

            def evaluate(plan: Plan) -> Evaluated:
                if plan not in found:
                    path = file_of(plan)
                    logits = emulated_logits(
                        path, info.input.name, data.eval.images, data_request.batch_size
                    )
                    found[plan] = Evaluated(plan, compare_logits(reference, logits, labels))
                    if found[plan].drop > budget + 1e-9 and plan.float_layers:
                        path.unlink()  # never measured nor written: no disk held for it
                return found[plan]

            trial_file.replace(path_of(trial.plan))
            found[trial.plan] = all_int8 = trial
            outcome.sensitivity, outcome.search = search_plans(
                layers, forced, evaluate, all_int8, exhaustive=request.exhaustive,
                max_candidates=request.max_candidates, time_budget_s=request.time_budget_s,
                one_shot=lambda: one_shot_sensitivity(
                    source, path_of(all_int8.plan), layers, data.eval.images,
                    data_request.batch_size, progress,
                ),
                progress=progress,
            )  # fmt: skip
            if outcome.search.note():
                outcome.notes.append(outcome.search.note())
            candidates = [e for e in found.values() if forced <= e.plan.float_layers]
            outcome.evaluated = list(found.values())
            within = [e for e in candidates if e.drop <= budget + 1e-9]
            if not within:
                best = min(candidates, key=lambda e: e.drop)
                raise AlexnetDeployError(
                    f"no precision plan meets the budget of {budget:g} points ({outcome.measure}): "
                    f"the best, {best.plan.label(layers)}, drops {best.drop:.2f}; nothing written",
                    hint="raise --max-top1-drop, calibrate on more representative images, or "
                    "keep float layers in fp32 (--keep fp32)"
                    + (f"; {outcome.search.note()}" if outcome.search.note() else ""),
                )
            chosen, outcome.skipped = to_measure(candidates, layers, budget, request.max_measured)
            if measurable:
                measure_and_choose(
                    outcome, chosen, all_int8, file_of, model_path, request, data, budget,
                    reference, input_name=info.input.name, batch_size=data_request.batch_size,
                    scratch=scratch, work_dir=work_dir, rules=rules, progress=progress,
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
            chosen_file = file_of(outcome.chosen.plan, chosen_keep(outcome))
            outcome.written = _write(chosen_file, out, force)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return outcome


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
