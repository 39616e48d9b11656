"""Which gate runs, decided in one place: a typed request in, a GateResult out.

Three modes earn their place (docs/ci-gate.md: each one's measured false alarms and detections):

    history   the current report against the baseline's past runs: one report (``gate BASELINE
              CURRENT``), a directory of them, and the separate runs ``--measure-noise`` adds;
              thresholds from their spread when there are two runs or more, else the defaults
              measured for separate runs
    ratios    ratios measured within one run (INT8 vs FP32, engine vs direct) against a ratio
              baseline: machine-independent (CI)
    paired    the baseline's engines and the current model's measured interleaved in one
              process: the one that sees a 10% change on a shared machine (CI)

Inputs, not modes: CURRENT is a report, or (``run``) the baseline's configurations benched now;
``measure_noise`` adds that many separate runs of the baseline to its history before judging.

The gate never exports, calibrates or benches on its own (tests/test_structure.py): what a mode
needs made comes in as :class:`Makers` from the orchestration layer (``workflow.gate_makers``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from alexnet_deploy import constants as C
from alexnet_deploy.errors import UsageError
from alexnet_deploy.fileio import prepare_output
from alexnet_deploy.gate.baseline import RerunPlan, accept_baseline, is_ratio_baseline, rerun_plan
from alexnet_deploy.gate.compare import GateResult, compare_reports
from alexnet_deploy.gate.reports import check_same_model, load_report
from alexnet_deploy.gate.spread import NOISE_FILE, Spread
from alexnet_deploy.gate.thresholds import Thresholds
from alexnet_deploy.progress import Progress


class Mode(StrEnum):
    HISTORY = "history"
    RATIOS = "ratios"
    PAIRED = "paired"


@dataclass(frozen=True)
class Makers:
    """What a gate needs made, passed in by the orchestration layer (workflow.gate_makers).

    ``artifacts(model, precisions, quantizers)``: the FP32 model (None: the main job's export)
    with the siblings those precisions and INT8 routes need, made or reused; its path.
    ``bench(plan, out)``: the plan's configurations benched into the directory ``out``; ``out``.
    """

    artifacts: Callable[[Path | None, set[str], set[str]], Path]
    bench: Callable[[RerunPlan, Path], Path]


@dataclass(frozen=True)
class GateRequest:
    """One gate, as the command line (or a caller of the library) asks for it."""

    baseline: Path  # a bench report, a directory of past reports, or a ratio baseline
    current: Path | None = None  # the report judged
    run: bool = False  # CURRENT is the baseline's configurations benched now
    ratios: bool = False
    paired: bool = False
    model: Path | None = None  # the current FP32 model: paired (without a CURRENT report)
    baseline_model: Path | None = None  # paired: the baseline's model, where it moved
    require_paired: bool = False  # paired: a usage error rather than a fall-back
    measure_noise: int = 0  # separate runs of the baseline added to its history first
    thresholds: Thresholds = field(default_factory=Thresholds)
    allow_env_mismatch: bool = False
    update_baseline: bool = False  # CURRENT becomes the baseline once judged (accept_current)
    work_dir: Path = Path(C.DEFAULT_WORK_DIR)

    @property
    def measure_only(self) -> bool:
        """``--measure-noise`` with nothing to judge: the noise is measured and stored only."""
        return bool(self.measure_noise) and self.current is None and not self.run

    def current_report(self) -> Path | None:
        """Where the report judged is: CURRENT, or where ``run`` benches it."""
        if self.run:
            from alexnet_deploy.artifacts import WorkDir

            return WorkDir(self.work_dir).gate_run_reports
        return self.current


def decide_mode(request: GateRequest) -> Mode:
    """Paired when asked (``paired``) or when a current model is given without a CURRENT report
    (or ``run``); ratios when asked or the baseline is a ratio baseline; history otherwise."""
    if request.paired or (request.model is not None and request.current_report() is None):
        return Mode.PAIRED
    if request.ratios or is_ratio_baseline(request.baseline):
        return Mode.RATIOS
    return Mode.HISTORY


def check_request(request: GateRequest) -> Mode:
    """The request's mode, or a usage error for a combination that cannot be honoured, before
    anything is loaded or measured."""
    mode = decide_mode(request)
    if mode is Mode.PAIRED:
        if request.ratios or is_ratio_baseline(request.baseline):
            raise UsageError(
                "a paired gate measures the baseline report's engines; ratios compare reports",
                hint="drop --ratios (or --paired/--model), or pass a bench report as BASELINE",
            )
        if request.update_baseline:
            raise UsageError("--update-baseline takes a CURRENT report; --paired measures none")
        if request.measure_noise:
            raise UsageError(
                "--measure-noise adds separate runs to a history gate's baseline; "
                "a paired gate measures its own noise",
                hint="drop --measure-noise, or gate BASELINE CURRENT --measure-noise N",
            )
    if request.run and request.current is not None:
        raise UsageError(
            "--run benches CURRENT now: pass a CURRENT report or --run, not both",
            hint="alexnet-deploy gate BASELINE CURRENT, or alexnet-deploy gate BASELINE --run",
        )
    if request.run and is_ratio_baseline(request.baseline):
        raise UsageError(
            f"--run benches the baseline report's configurations; {request.baseline} is a ratio "
            "baseline, which holds none",
            hint="pass a CURRENT report to judge against the ratios",
        )
    if request.measure_noise:
        if mode is Mode.RATIOS:
            raise UsageError(
                "--measure-noise sets a history gate's thresholds; ratios are measured within "
                "one run and need none",
                hint="drop --measure-noise",
            )
        if request.measure_noise < 2:
            raise UsageError(f"--measure-noise needs at least 2 runs, got {request.measure_noise}")
        if request.baseline.exists():  # the noise record is written beside it: writable?
            folder = request.baseline if request.baseline.is_dir() else request.baseline.parent
            prepare_output(folder / NOISE_FILE, force=True, what="the noise record",
                           option="--measure-noise")  # fmt: skip
    elif mode is not Mode.PAIRED and request.current_report() is None:
        raise UsageError(
            "gate needs a CURRENT report",
            hint="pass it, or --run to bench the baseline's configurations now, or --model "
            "M.onnx to measure it paired",
        )
    return mode


def check_gate_outputs(request: GateRequest, outputs: dict | None = None) -> Mode:
    """Refuse, before any work, a gate whose outputs (``outputs``: --json/--md/--junit; and
    what ``--update-baseline`` replaces and ``--run`` writes) would destroy what it reads or
    the places around it (outputs.py). Returns the mode, as check_request does."""
    from alexnet_deploy.gate.baseline import baseline_output
    from alexnet_deploy.gate.output import check_output_paths
    from alexnet_deploy.gate.reports import SAMPLES, SUMMARY
    from alexnet_deploy.outputs import OutputDir

    mode = check_request(request)
    ratio_mode = mode is Mode.RATIOS
    replaced = request.update_baseline and not (ratio_mode and request.baseline.is_dir())
    check_output_paths(
        {
            **(outputs or {}),
            "--update-baseline": baseline_output(request.baseline, ratio_mode)
            if request.update_baseline else None,
            "--run": OutputDir(request.current_report(), (SUMMARY, SAMPLES))
            if request.run else None,
        },
        # a baseline replaced whole is an output; a bench report a ratio file joins stays read
        {"baseline": None if replaced else request.baseline, "current": request.current},
        request.work_dir,
    )  # fmt: skip
    return mode


def _need(makers: Makers | None, what: str) -> Makers:
    if makers is None:
        raise TypeError(f"{what} makes artifacts or benches: pass makers (workflow.gate_makers)")
    return makers


def measure_noise(
    request: GateRequest, makers: Makers | None, *, progress: Progress = lambda m: None
) -> tuple[Spread, Path]:
    """``--measure-noise N``: the baseline's configurations benched N more times as separate
    runs, their spread with the baseline's own run stored beside it (gate/spread.py), so later
    gates against it take their thresholds from it. Returns ``(spread, path)``."""
    from alexnet_deploy.gate.spread import measure_run_noise

    check_request(request)
    if request.current is not None:
        load_report(request.current)  # a broken CURRENT is refused before the runs, not after
    bench = _need(makers, "--measure-noise").bench
    base = load_report(request.baseline)
    plan = rerun_plan(base)
    with _held_for(request):
        return measure_run_noise(
            base, request.measure_noise, request.work_dir, lambda out: bench(plan, out), progress
    )


def _held_for(request: GateRequest):
    """The work directory's lock, held once for the whole gate where it measures (paired,
    ``run``, ``measure_noise``: its artifacts, engines and benches nest under it); nothing for a
    gate that only reads reports."""
    import contextlib

    from alexnet_deploy.locking import directory_lock

    if decide_mode(request) is Mode.PAIRED or request.run or request.measure_noise:
        return directory_lock(request.work_dir, "gate")
    return contextlib.nullcontext()


def run_gate(
    request: GateRequest,
    makers: Makers | None = None,
    *,
    progress: Progress = lambda m: None,
    on_noise: Callable[[Spread, Path], None] = lambda spread, path: None,
) -> GateResult:
    """The gate the request asks for (:func:`decide_mode`), judged: truthy on pass. ``makers``
    is needed where the gate measures (paired, ``run``, ``measure_noise``); ``on_noise(spread,
    path)`` hears the noise ``measure_noise`` measured before CURRENT is judged with it."""
    with _held_for(request):
        return _judge(request, makers, progress, on_noise)


def _judge(request: GateRequest, makers, progress: Progress, on_noise) -> GateResult:
    from alexnet_deploy.gate.ratios import compare_ratios

    mode = check_request(request)
    if request.measure_only:
        raise UsageError(
            "no report to judge", hint="pass CURRENT (or --run), or call measure_noise alone"
        )
    fell_back = None
    if mode is Mode.PAIRED:
        from alexnet_deploy.gate.paired_gate import paired_or_fallback

        result, fell_back = paired_or_fallback(
            load_report(request.baseline), request.baseline_model, request.model,
            request.work_dir, request.thresholds.values["p50"], _need(makers, "paired").artifacts,
            required=request.require_paired or request.current_report() is None,
            progress=progress,
        )  # fmt: skip
        if result is not None:
            return result
    if request.measure_noise:
        on_noise(*measure_noise(request, makers, progress=progress))
    current = request.current_report()
    base = load_report(request.baseline)
    if request.run:
        progress("benching the baseline's configurations")
        _need(makers, "--run").bench(rerun_plan(base), current)
    cur = load_report(current)
    if base.is_history and len(cur.environment_keys) == 1:
        # a history keeps the reports of the current's environment; the rest are listed
        base = load_report(request.baseline, environment_key=next(iter(cur.environment_keys)))
    check_same_model(base, cur)
    if mode is Mode.RATIOS:
        result = compare_ratios(base, cur, request.thresholds.values["p50"])
    else:
        result = compare_reports(
            base, cur, request.thresholds, allow_env_mismatch=request.allow_env_mismatch
        )
    if request.run:
        result.notes.append(
            f"current: the baseline's configurations benched now (--run): {current}"
        )
    if fell_back:
        result.notes.insert(0, f"{fell_back}: comparing the reports unpaired instead")
    return result


def accept_current(request: GateRequest) -> Path:
    """``--update-baseline``: the report judged (CURRENT, or ``run``'s) becomes the baseline
    (a ratio baseline in ratios mode), atomically; returns where that report is."""
    current = request.current_report()
    if current is None:
        raise UsageError("--update-baseline takes a CURRENT report (or --run)")
    ratio_mode = decide_mode(request) is Mode.RATIOS
    accept_baseline(request.baseline, load_report(current), ratio_mode)
    return current
