"""A gate verdict never rests on an unstable row without saying so: each speed verdict of a
configuration whose baseline or current row was unstable (bench/stats.py's one verdict, as the
report recorded it) names why, the verdict line says which configurations, and the notes say
what it likely means. The verdict itself is unchanged: the flag is a warning, not a failure."""

from __future__ import annotations

from alexnet_deploy.bench.records import recorded_stability
from alexnet_deploy.bench.stats import UNSTABLE_CAUSE, UNSTABLE_HINT
from alexnet_deploy.cases import Case
from alexnet_deploy.gate.reports import LoadedReport

SPEED_METRICS = ("p50", "p99", "throughput")


def instability(report: LoadedReport, key: Case) -> str:
    """Why the report's row for ``key`` is unstable ("" when stable). A history pools several
    runs, whose spread between runs sets the gate's thresholds instead: ""."""
    if report.is_history or key not in report.rows:
        return ""
    return recorded_stability(report.rows[key], report.samples.get(key))


def mark_unstable(result, baseline: LoadedReport, current: LoadedReport) -> None:
    """Set ``Verdict.unstable`` on the speed verdicts that rest on an unstable row, and add a
    note with the likely cause and the fix."""
    reasons = {}
    for key in current.rows.keys() & baseline.rows.keys():
        sides = (("baseline", instability(baseline, key)), ("current", instability(current, key)))
        found = "; ".join(f"{side}: {why}" for side, why in sides if why)
        if found:
            reasons[key.label] = found
    for verdict in result.verdicts:
        if verdict.metric in SPEED_METRICS and verdict.config in reasons:
            verdict.unstable = reasons[verdict.config]
    note_unstable(result, "configuration(s) judged on unstable rows")


def note_unstable(result, what: str) -> None:
    """The note naming the judged verdicts that rest on an unstable row, with the likely cause
    and the fix (nothing when none does)."""
    judged = unstable_configurations(result)
    if judged:
        result.notes.append(
            f"{len(judged)} {what}, whose own measurements disagree ("
            + "; ".join(f"{c}: {why}" for c, why in judged.items())
            + f"); likely cause: {UNSTABLE_CAUSE}. Their verdicts are not to be trusted: "
            f"{UNSTABLE_HINT}"
        )


def unstable_configurations(result) -> dict[str, str]:
    """Configuration -> why, for the judged verdicts resting on an unstable row (the gate
    JSON's ``unstable``; empty when none)."""
    return {v.config: v.unstable for v in result.comparable if v.unstable}
