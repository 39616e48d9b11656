"""``gate --history STORE``: the current run judged against the stored runs of each of its
configurations on its own machine class and model, and the commit where a step came in.

Per configuration: its last N stored runs (``--last``, C.GATE_HISTORY_RUNS, at most
C.GATE_HISTORY_MAX_RUNS) made before the current run, of the kinds measured by bench's rules
(bench, gate, import: never tune or plan), on the current run's machine class (its CPU class,
cpu_isa.py, and CPU model: two CPUs of one class differ up to 2.5x; a machine class with no
history is "insufficient history", not a pass) and model (by sha256), then

1. the change points over those runs and the current one (gate/changepoint.py), each named in
   every output as a "step" row (shown, not a verdict on this run: the run that brought a step
   was judged when it ran; the dashboard marks it);
2. the current run judged as the history mode judges a directory of past reports
   (gate/compare.py: the same rule, thresholds from the runs' own spread), against the runs
   since the last step that at least C.CHANGEPOINT_MIN_SEGMENT stored runs confirm: a step in
   the history does not widen the noise the current run is judged with.

With ``--store`` also given, the verdict per configuration (and the current run, where that
store lacks it) is written back (Store.add_verdicts) for the dashboard.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

from alexnet_deploy import constants as C
from alexnet_deploy.errors import EXIT_USAGE, AlexnetDeployError, UsageError
from alexnet_deploy.gate.compare import GateResult
from alexnet_deploy.gate.history_series import StoreHistory, judge_series
from alexnet_deploy.gate.reports import SUMMARY, load_report
from alexnet_deploy.gate.thresholds import Thresholds
from alexnet_deploy.progress import Progress

METHOD = "history-changepoint"  # StoredVerdict.method of this gate's verdicts
STORE_SUFFIXES = (".sqlite", ".sqlite3", ".db")


def is_store(value: str) -> bool:
    """``--history``'s value names a results store (a URL, ``default``, an SQLite file or a
    path ending in .sqlite) rather than a report or a directory of reports."""
    if "://" in value or value == "default":
        return True
    from alexnet_deploy.store.connect import is_sqlite_file

    path = Path(value)
    if path.is_dir():
        return False
    try:
        return is_sqlite_file(path) or path.suffix.lower() in STORE_SUFFIXES
    except AlexnetDeployError:  # unreadable: opening it as a store says why (exit 2)
        return True


@dataclass(frozen=True)
class StoreGateRequest:
    """One ``gate --history STORE``, as the command line (or a caller) asks for it."""

    store: str  # a path (SQLite) or a postgresql:// URL: read, never written
    current: Path | None = None  # the report judged
    run: bool = False  # CURRENT is the newest stored run's configurations benched now
    last: int = C.GATE_HISTORY_RUNS
    thresholds: Thresholds = field(default_factory=Thresholds)
    write_to: str | None = None  # --store: where the verdicts are written back
    work_dir: Path = Path(C.DEFAULT_WORK_DIR)

    def current_report(self) -> Path | None:
        if self.run:
            from alexnet_deploy.artifacts import WorkDir

            return WorkDir(self.work_dir).gate_run_reports
        return self.current


def check_store_request(request: StoreGateRequest, outputs: dict | None = None) -> None:
    """Refuse, before any work, what cannot be honoured: no current run, both a CURRENT and
    ``--run``, ``--last`` below 1, an output that would destroy the store or the report read."""
    from alexnet_deploy.gate.output import report_files
    from alexnet_deploy.gate.reports import SAMPLES
    from alexnet_deploy.outputs import OutputDir, check_outputs

    if request.run and request.current is not None:
        raise UsageError(
            "--run benches CURRENT now: pass a CURRENT report or --run, not both",
            hint="alexnet-deploy gate --history STORE CURRENT, or gate --history STORE --run",
        )
    if request.current_report() is None:
        raise UsageError(
            "gate --history STORE needs the run to judge",
            hint="alexnet-deploy gate --history STORE CURRENT, or --run to bench it now",
        )
    if request.last < 1:
        raise UsageError(f"--last must be 1 or more, got {request.last}")
    if request.last > C.GATE_HISTORY_MAX_RUNS:
        raise UsageError(
            f"--last {request.last}: the gate judges with at most {C.GATE_HISTORY_MAX_RUNS} "
            "stored runs per configuration",
            hint=f"--last {C.GATE_HISTORY_RUNS} (the default); 'alexnet-deploy dashboard' shows "
            "a longer history",
        )
    stores = [Path(s) for s in (request.store, request.write_to) if s and "://" not in s]
    check_outputs(
        "gate",
        {
            **(outputs or {}),
            "--run": OutputDir(request.current_report(), (SUMMARY, SAMPLES))
            if request.run else None,
        },
        {"current report": report_files(request.current), "results store": stores},
        work_dir=request.work_dir,
    )  # fmt: skip


def _rerun_plan(store, cpu_class: str, cpu_model: str):
    """``--run``: the configurations of the newest stored run of this machine class (CPU class
    and model) whose report is on this machine, with its model, images and rules
    (gate/baseline.py's rerun_plan); a bench, gate or import run: never tune's or plan's
    report, measured under other rules."""
    from alexnet_deploy.gate.baseline import rerun_plan
    from alexnet_deploy.store.records import SERIES_KINDS

    runs = [
        r
        for r in reversed(store.runs())
        if (r.cpu_class, r.cpu_model) == (cpu_class, cpu_model) and r.kind in SERIES_KINDS
    ]
    for run in runs:
        if run.source and (Path(run.source) / SUMMARY).is_file():
            return rerun_plan(load_report(Path(run.source)))
    raise AlexnetDeployError(
        f"--run benches the newest stored run's configurations again, from its report; store "
        f"{store.display} has {len(runs)} bench, gate or import run(s) of machine class "
        f"{cpu_class} / {cpu_model} and none of their reports is on this machine",
        hint="bench yourself (alexnet-deploy bench --store STORE --out REPORT), then "
        "gate --history STORE REPORT",
    )


@contextlib.contextmanager
def store_failures_exit_2(kept: str = ""):
    """A store that cannot be opened, read or written is a usage error (exit 2), as a broken
    baseline report is: the gate's exit 1 means "regressed". ``kept``: what the message adds
    was kept."""
    try:
        yield
    except AlexnetDeployError as err:
        err.exit_code = EXIT_USAGE
        err.message += f" ({kept})" if kept else ""
        raise


def _read_history(store, run, results: list, last: int) -> tuple[dict, dict]:
    """Per configuration of the current run: its last ``last`` stored results made before it
    on the run's machine class and model, of bench's kinds (the current run left out where the
    store holds it already); and the other machine classes each is stored on."""
    history, elsewhere = {}, {}
    for result in results:
        series = store.series(
            result.label, run.cpu_class, run.model_sha256, cpu_model=run.cpu_model,
            before=run.created, limit=last + 1,
        )  # fmt: skip
        history[result.label] = [r for r in series if r.run.uuid != run.uuid][-last:]
    for key in store.configurations():
        if key.model_sha256 == run.model_sha256 and key[1:3] != (run.cpu_class, run.cpu_model):
            elsewhere.setdefault(key.label, []).append(f"{key.cpu_class} / {key.cpu_model}")
    return history, elsewhere


def judge_with_store(
    request: StoreGateRequest, makers=None, *, progress: Progress = lambda m: None
) -> tuple[GateResult, object, list]:
    """``gate --history STORE``: the current report (CURRENT, or ``run``: benched now) judged
    against the store's runs. Returns the result (truthy on pass), and the current run and its
    results as the store holds runs (what :func:`write_back` writes)."""
    from alexnet_deploy.cpu_isa import this_cpu
    from alexnet_deploy.locking import directory_lock
    from alexnet_deploy.store.db import open_store
    from alexnet_deploy.store.from_report import run_from_report
    from alexnet_deploy.sysinfo import cpu_info

    check_store_request(request)
    held = directory_lock(request.work_dir, "gate") if request.run else contextlib.nullcontext()
    with held:
        with store_failures_exit_2():
            store = open_store(request.store, create=False, option="--history")
        with store:
            current = request.current_report()
            if request.run:
                if makers is None:
                    raise TypeError("--run benches: pass makers (workflow.gate_makers)")
                with store_failures_exit_2():
                    plan = _rerun_plan(store, this_cpu().name, cpu_info()["model"])
                progress("benching the newest stored run's configurations")
                makers.bench(plan, current)
            report = load_report(current)
            run, results = run_from_report(current, kind="gate" if request.run else "import")
            progress(f"reading history from {store.display}")
            with store_failures_exit_2():
                history, elsewhere = _read_history(store, run, results, request.last)
            display = store.display
    result = judge_series(
        report, run, results, history, request.thresholds,
        display=display, last=request.last, elsewhere=elsewhere,
    )  # fmt: skip
    if request.run:
        result.notes.append(
            f"current: the newest stored run's configurations benched now (--run): {current}"
        )
    return result, run, results


def run_store_gate(
    request: StoreGateRequest, makers=None, *, progress: Progress = lambda m: None
) -> GateResult:
    """:func:`judge_with_store`, and with ``request.write_to`` the verdicts written back (a
    note says so). Truthy on pass."""
    result, run, results = judge_with_store(request, makers, progress=progress)
    if request.write_to:
        result.notes.append(write_back(request.write_to, run, results, result.history))
    return result


def write_back(spec: str, run, results: list, view: StoreHistory) -> str:
    """The verdict per configuration written to the store ``spec`` (the current run stored
    first where it is not there: a run's id is its report's content, so never twice); what
    was written, as a note."""
    from alexnet_deploy.store.db import open_store
    from alexnet_deploy.store.records import StoredVerdict

    verdicts = [
        StoredVerdict(
            run.uuid,
            line.config,
            line.verdict,
            METHOD,
            line.change_commit,
            {"judged_against": line.judged_against, "change_points": line.change_points},
        )  # fmt: skip
        for line in view.configurations
    ]
    with open_store(spec) as store:
        try:
            store.run(run.uuid)
            stored = ""
        except AlexnetDeployError:  # not there yet
            store.add_run(run, results)
            stored = f"stored run {run.uuid[:8]} in {store.display}; "
        store.add_verdicts(verdicts)
        return f"{stored}{len(verdicts)} verdict(s) on run {run.uuid[:8]} written to store {store.display}"
