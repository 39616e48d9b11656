"""A configuration's stored history judged: the change points over its runs and the current
one, the runs the current one is judged with, and the view of both every output shows
(gate/store_history.py reads the store and calls :func:`judge_series`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from alexnet_deploy import constants as C
from alexnet_deploy.gate.changepoint import ChangePoint, detect_changes, min_runs_after
from alexnet_deploy.gate.compare import (
    IMPROVED,
    INCONCLUSIVE,
    NOT_COMPARABLE,
    NOT_JUDGED,
    REGRESSED,
    GateResult,
    Verdict,
    compare_reports,
)
from alexnet_deploy.gate.reports import SUMMARY, LoadedReport
from alexnet_deploy.gate.thresholds import Thresholds
from alexnet_deploy.store.records import short_commit

STEP = "step"  # the metric of the rows naming a change point
STEP_UNIT = "images/s"  # what a step row's baseline and current are: the runs' medians


@dataclass
class ConfigurationHistory:
    """One configuration as the gate read it from the store (JSON ``history``; Markdown)."""

    config: str
    verdict: str  # StoredVerdict's: pass, regression, improvement, noise, insufficient
    runs: list[str]  # each stored run's commit (or id), oldest first, then "current"
    images_per_s: list[float | None]
    judged_against: list[str]  # the stored runs the current one was judged with
    change_points: list[dict] = field(default_factory=list)  # ChangePoint as dicts
    change_commit: str | None = None  # where the latest step came in
    candidates: list[dict] = field(default_factory=list)  # candidate steps (p above alpha)

    @property
    def steps(self) -> list[ChangePoint]:
        return [ChangePoint(**point) for point in self.change_points]

    @property
    def latest_step(self) -> ChangePoint | None:
        return self.steps[-1] if self.change_points else None


@dataclass
class StoreHistory:
    """What ``gate --history STORE`` read: the store, the machine class (CPU class and model)
    and model, each configuration."""

    store: str
    cpu_class: str
    model: str
    last: int
    configurations: list[ConfigurationHistory]
    cpu_model: str = ""

    @property
    def machine_class(self) -> str:
        return f"{self.cpu_class} / {self.cpu_model}"

    @property
    def mode_means(self) -> str:
        """The mode's description (every output's "mode"): what a store's history is."""
        return (
            f"the current run against the last {self.last} stored runs of this machine class "
            f"({self.machine_class}: CPU class and CPU model) per configuration of model "
            f"{self.model}, made before it by bench, gate or import; judged against the runs "
            "since the last step their change points name, thresholds from those runs' spread"
        )

    @property
    def change_commits(self) -> dict[str, str | None]:
        """Configuration -> the commit where its latest step came in (None: no step)."""
        return {c.config: c.change_commit for c in self.configurations}

    @property
    def steps_clause(self) -> str:
        """The summary line's clause: each commit where a latest step came in, with the median
        step and in how many of the configurations with a history ("step -20% at a218299 in
        26/26 configurations"); "" when none."""
        judged = [c for c in self.configurations if c.verdict != "insufficient"]
        by_commit: dict[str, list[float]] = {}
        for line in judged:
            if line.latest_step is not None:
                key = short_commit(line.change_commit, 7) or "an unknown commit"
                by_commit.setdefault(key, []).append(line.latest_step.relative_change)
        return ", ".join(
            f"step {float(np.median(moves)):+.0%} at {commit} in {len(moves)}/{len(judged)} "
            "configurations"
            for commit, moves in by_commit.items()
        )

    def as_markdown(self) -> str:
        import polars as pl

        from alexnet_deploy.render import TableFormat, frame_as_text

        frame = pl.DataFrame(
            [
                {
                    "config": c.config,
                    "verdict": c.verdict,
                    "judged against": f"{len(c.judged_against)} run(s)"
                    + (f" since {short_commit(c.change_commit)}" if c.change_commit else ""),
                    "steps (where each came in)": "; ".join(
                        p.describe() for p in (*c.steps, *(ChangePoint(**d) for d in c.candidates))
                    )
                    or "none",
                    "images/s per run, oldest first": " ".join(
                        "-" if v is None else f"{v:.4g}" for v in c.images_per_s
                    ),
                }
                for c in self.configurations
            ]
        )
        return (
            f"### History: store {self.store}, machine class {self.machine_class}, model "
            f"{self.model}, last {self.last} runs\n\n" + frame_as_text(frame, TableFormat.md) + "\n"
        )


def _label(run) -> str:
    return short_commit(run.commit) or run.uuid[:12]


def _stored_runs_report(windows: dict, display: str, machine_class: str) -> LoadedReport:
    """The judged configurations' stored runs as the history of past reports compare_reports
    reads: each run's samples (ms -> ns) under the configurations whose window holds it."""
    from alexnet_deploy.bench.records import BenchRow

    by_run: dict[str, tuple] = {}
    for case, window in windows.items():
        for result in window:
            by_run.setdefault(result.run.uuid, (result.run, {}))[1][case] = result
    ordered = sorted(by_run.values(), key=lambda item: (item[0].created, item[0].run_id or 0))
    report = LoadedReport(paths=[], environment_keys={f"machine class {machine_class}"})
    for run, results in ordered:
        # not a file: a store holds no report (a path below the store that cannot exist)
        report.paths.append(Path(display) / run.uuid / SUMMARY)
        report.run_names.append(f"{_label(run)} ({run.created[:16]})")
        report.models.add(run.model_name)
        samples = {}
        for case, result in results.items():
            report.rows.setdefault(case, BenchRow.from_columns(result.record))
            if result.samples_ms:
                rounds = [np.asarray(result.samples_ms, dtype=np.float64) * 1e6]
                samples[case] = rounds
                report.samples.setdefault(case, []).extend(rounds)
        report.runs.append(samples)
    return report


def _judged_window(history: list, points: list[ChangePoint]) -> tuple[list, ChangePoint | None]:
    """The stored runs the current one is judged with: those since the last step that enough
    stored runs confirm (an older step, or none: all of them), and that step."""
    for point in reversed(points):
        if len(history) - point.index >= C.CHANGEPOINT_MIN_SEGMENT:
            return history[point.index :], point
    return history, None


def _configuration_verdict(verdicts: list[Verdict]) -> str:
    """The verdict stored per configuration, from its metrics' (its step rows left out)."""
    kinds = {v.verdict for v in verdicts if v.metric != STEP}
    if REGRESSED in kinds:
        return "regression"
    if INCONCLUSIVE in kinds:
        return "noise"
    if not kinds - {NOT_COMPARABLE, NOT_JUDGED}:
        return "insufficient"
    return "improvement" if IMPROVED in kinds else "pass"


def _step_verdict(config: str, point: ChangePoint, series: list, judged: ChangePoint | None):
    run = series[point.index].run
    note = f"{point.describe()}, run {point.index + 1} of {len(series)} ({run.created[:16]})"
    if point == judged:
        since = len(series) - 1 - point.index
        note += f"; judged against the {since} run(s) since that step"
    return Verdict(
        config, STEP, NOT_JUDGED, point.before, point.after,
        -point.relative_change, p_value=point.p_value, note=note, unit=STEP_UNIT,
    )  # fmt: skip


def _floor_note(lengths: list[int]) -> str:
    """What a history of these lengths can name: how many runs must follow a step (the
    permutation test's floor), and what a candidate step is."""
    longest = max(lengths)
    after = min_runs_after(longest)
    named = (
        f"a step is named once {after} run(s) follow it, however clear (p <= "
        f"{C.CHANGEPOINT_ALPHA:g} cannot be reached with fewer)"
        if after is not None
        else "no step can be named yet (too few runs)"
    )
    return (
        f"change points: in a history of {longest} runs {named}; a best split with p up to "
        f"{C.CHANGEPOINT_CANDIDATE_ALPHA:g} is a candidate step, shown, not named"
    )


def judge_series(
    current: LoadedReport,
    current_run,
    current_results: list,
    history: dict[str, list],
    thresholds: Thresholds,
    *,
    display: str,
    last: int = C.GATE_HISTORY_RUNS,
    elsewhere: dict[str, list[str]] | None = None,
) -> GateResult:
    """The current run (its report, and as a stored run with its results) judged against
    ``history``: label -> that configuration's stored results on the current run's machine
    class and model, oldest first. ``elsewhere``: label -> the other machine classes it is
    stored on. The result's ``history`` is a :class:`StoreHistory` (what every output shows of
    it)."""
    elsewhere = elsewhere or {}
    by_label = {case.label: case for case in current.rows}
    windows, lines, steps, missing, lengths = {}, {}, [], [], []
    for result in current_results:
        case = by_label.get(result.label)
        if case is None or not result.ok:
            why = result.record.get("reason") or "no successful row"
            missing.append(
                Verdict(result.label, "all", NOT_COMPARABLE, note=f"failed in this run: {why}")
            )
            continue
        past = [r for r in history.get(result.label, []) if r.ok and r.images_per_s]
        if not past:
            other = elsewhere.get(result.label)
            where = f"; stored on machine class {', '.join(other)} only" if other else ""
            note = (
                "insufficient history: no stored run of this configuration and model on "
                f"machine class {current_run.machine_class}{where} (never compared across "
                "machine classes)"
            )
            missing.append(Verdict(result.label, "all", NOT_COMPARABLE, note=note))
            lines[result.label] = ConfigurationHistory(
                result.label, "insufficient", ["current"], [result.images_per_s], []
            )
            continue
        series = [*past, replace(result, run=current_run)]
        found = detect_changes(series, candidates=True)
        points = [p for p in found if not p.candidate]
        window, judged = _judged_window(past, points)
        windows[case] = window
        lengths.append(len(series))
        steps += [_step_verdict(result.label, p, series, judged) for p in points]
        lines[result.label] = ConfigurationHistory(
            result.label, "", [*(_label(r.run) for r in past), "current"],
            [r.images_per_s for r in series], [_label(r.run) for r in window],
            [asdict(p) for p in points], points[-1].commit if points else None,
            [asdict(p) for p in found if p.candidate],
        )  # fmt: skip
    if windows:
        baseline = _stored_runs_report(windows, display, current_run.machine_class)
        judged_now = replace(
            current,
            environment_keys=baseline.environment_keys,
            rows={k: v for k, v in current.rows.items() if k in windows},
            samples={k: v for k, v in current.samples.items() if k in windows},
        )
        result = compare_reports(baseline, judged_now, thresholds)
        machines = sorted(
            {r.run.machine for w in windows.values() for r in w} | {current_run.machine}
        )
        if len(machines) > 1:
            result.notes.append(
                f"history: runs of machine class {current_run.machine_class} from "
                f"{len(machines)} environments (cores or runtime versions differ), compared "
                "as one class"
            )
        result.notes.append(_floor_note(lengths))
    else:
        result = GateResult([], mode="history")
        result.notes.append("no configuration could be compared")
    result.notes.insert(
        0,
        f"history: store {display}, model {current_run.model_name}: per configuration the last "
        f"{last} stored runs of this machine class ({current_run.machine_class}) made before "
        "this run (bench, gate and import runs)",
    )
    order = [r.label for r in current_results]
    result.verdicts = sorted(
        [*result.verdicts, *missing, *steps],
        key=lambda v: order.index(v.config) if v.config in order else len(order),
    )
    for label, line in lines.items():
        line.verdict = _configuration_verdict([v for v in result.verdicts if v.config == label])
    result.history = StoreHistory(
        display, current_run.cpu_class, current_run.model_name, last, list(lines.values()),
        current_run.cpu_model,
    )  # fmt: skip
    result.notes += _candidate_notes(result.history)
    return result


def _candidate_notes(view: StoreHistory) -> list[str]:
    """One note per commit where candidate steps (p above alpha: not named yet) came in, with
    how many configurations show one there, the median move and the p-values."""
    by_commit: dict[str, list[ChangePoint]] = {}
    for line in view.configurations:
        for point in (ChangePoint(**c) for c in line.candidates):
            by_commit.setdefault(short_commit(point.commit) or "an unknown commit", []).append(point)
    judged = sum(c.verdict != "insufficient" for c in view.configurations)
    return [
        f"candidate step at commit {commit} in {len(points)}/{judged} configurations: images/s "
        f"{float(np.median([p.relative_change for p in points])):+.1%}, p="
        f"{min(p.p_value for p in points):.3f}-{max(p.p_value for p in points):.3f} (above "
        f"{C.CHANGEPOINT_ALPHA:g}: not named yet; named once enough runs follow it)"
        for commit, points in by_commit.items()
    ]
