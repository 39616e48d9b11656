"""Baseline vs current: a verdict per configuration and metric, and one for the whole gate.

Regressed only when the change exceeds the metric's threshold AND the bootstrap interval of the
ratio lies entirely on the regressed side of "no change" (see significance.py for why). A
fidelity drop beyond the budget fails whatever the speed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from alexnet_deploy import constants as C
from alexnet_deploy.errors import UsageError
from alexnet_deploy.gate.reports import LoadedReport
from alexnet_deploy.gate.significance import bootstrap_ratio, mann_whitney_p
from alexnet_deploy.gate.thresholds import Thresholds

IMPROVED, UNCHANGED, REGRESSED, NOT_COMPARABLE = (
    "improved",
    "unchanged",
    "regressed",
    "not comparable",
)
# measured on both sides but too thin to judge (a p99 of few samples): shown, never a verdict
NOT_JUDGED = "not judged"
# worse by more than the threshold, but the interval still reaches "no change": these runs vary
# too much to tell. Not a failure (no false alarms from a noisy machine); never "unchanged"
# either; --strict fails on it.
INCONCLUSIVE = "inconclusive"


def verdict_of(change: float, threshold: float, worse_sure: bool, better_sure: bool) -> str:
    """The one rule every gate mode judges by. ``change``: relative, worse is positive;
    ``worse_sure``/``better_sure``: the interval lies wholly on that side of no change."""
    if change > threshold:
        return REGRESSED if worse_sure else INCONCLUSIVE
    if change < -threshold and better_sure:
        return IMPROVED
    return UNCHANGED


# What was compared with what; named in every output (terminal, JSON, Markdown, JUnit).
MODES = {
    "history": "the current report against the baseline's past runs of this environment (one "
    "report or a directory of them, pooled; and the separate runs --measure-noise added): "
    "thresholds from their run-to-run spread when there are two runs or more, else those "
    "measured for separate runs",
    "ratios": "ratios measured within one run (INT8 vs FP32, engine vs direct): "
    "machine-independent",
    "paired": "the baseline's engine and the current one measured interleaved in one process "
    "(blocks A B, B A, ...), judged on the ratio of each pair",
}


# metrics where more is better: their verdict's ``change`` (worse is positive, for the rule) is
# the negative of how the metric itself moved ("step": a step in images/s, gate/history_series.py)
HIGHER_IS_BETTER = frozenset({"throughput", "ratio", "fidelity", "step"})


def metric_change(verdict: Verdict) -> float | None:
    """How the metric itself moved, current against baseline: a 54% throughput gain is
    +0.54, a 10% slower p50 +0.10 (what a person reads; the verdict says better or worse)."""
    if verdict.change is None:
        return None
    return -verdict.change if verdict.metric in HIGHER_IS_BETTER else verdict.change


@dataclass
class Verdict:
    config: str
    metric: str
    verdict: str
    baseline: float | None = None
    current: float | None = None
    change: float | None = None  # relative, in the metric's "worse is positive" direction
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    note: str = ""
    # the smallest change this check could call a regression: the threshold, or the interval's
    # half-width where that is wider (a noisier pair of runs cannot see less)
    detectable: float | None = None
    threshold: float | None = None  # the one this check used (raised by run-to-run noise)
    unstable: str = ""  # why a side's row was unstable (gate/stability.py), "" when stable
    unit: str = ""  # what baseline and current are in ("ms", "images/s", ...), "" for a ratio


@dataclass
class GateResult:
    verdicts: list[Verdict]
    notes: list[str] = field(default_factory=list)
    env_mismatch: bool = False
    mode: str = "history"  # a key of MODES
    history: object | None = None  # history mode: gate.history.HistoryView (change points)

    @property
    def regressions(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.verdict == REGRESSED]

    @property
    def comparable(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.verdict not in (NOT_COMPARABLE, NOT_JUDGED)]

    @property
    def not_comparable(self) -> list[Verdict]:
        """Checks that could not be made (a configuration or its data missing): --strict
        fails on these, not on a statistic too thin to judge."""
        return [v for v in self.verdicts if v.verdict == NOT_COMPARABLE]

    @property
    def inconclusive(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.verdict == INCONCLUSIVE]

    @property
    def unsettled(self) -> list[Verdict]:
        """What --strict fails on: checks not made, and changes too noisy to call."""
        return self.not_comparable + self.inconclusive

    @property
    def passed(self) -> bool:
        return not self.regressions and bool(self.comparable)

    def __bool__(self) -> bool:
        return self.passed

    @property
    def means(self) -> str:
        """What was compared with what: the mode's (MODES), or the history's own words where it
        has them (a results store's: gate/history_series.py)."""
        return getattr(self.history, "mode_means", None) or MODES[self.mode]

    @property
    def exit_code(self) -> int:
        if self.regressions:
            return 1
        if not self.comparable:
            return 2
        return 0

    def summary(self) -> str:
        counts = {
            k: sum(v.verdict == k for v in self.verdicts)
            for k in (REGRESSED, IMPROVED, UNCHANGED, NOT_COMPARABLE)
        }
        state = "PASS" if self.passed else ("FAIL" if self.regressions else "NOTHING COMPARABLE")
        text = f"gate {state} ({self.mode}): " + ", ".join(f"{n} {k}" for k, n in counts.items())
        for shown_if_any in (INCONCLUSIVE, NOT_JUDGED):
            n = sum(v.verdict == shown_if_any for v in self.verdicts)
            if n:
                text += f", {n} {shown_if_any}"
        steps = getattr(self.history, "steps_clause", "")  # a store's: where steps came in
        if steps:
            text += f"; {steps}"
        if self.env_mismatch:
            text += " [ENVIRONMENTS DIFFER: absolute timings compared across machines]"
        unstable = sorted({v.config for v in self.comparable if v.unstable})
        if unstable:
            text += f" (unstable: {', '.join(unstable)}: rows that disagree with themselves)"
        return text

    def __str__(self) -> str:
        return self.summary()


def _speed_verdict(
    name: str, metric: str, base_rounds, cur_rounds, threshold: float, seed: int,
    *, batch: int = 1, streams: int = 1,
) -> Verdict:  # fmt: skip
    """Each side: a flat sample array, or a list of per-round arrays (bench --repeat). Its
    values: p50 and p99 in ms; throughput in images/s of one stream (``batch`` / mean latency:
    the configuration's images/s where it runs one stream at a time (``streams``), as a
    store's step rows are)."""
    statistic = {"p50": "median", "p99": "p99", "throughput": "mean"}[metric]
    est = bootstrap_ratio(base_rounds, cur_rounds, statistic, seed=seed)
    base, cur = _flat(base_rounds), _flat(cur_rounds)
    if metric == "throughput":
        # throughput ~ 1 / mean latency: report the throughput ratio; worse is a drop
        ratio, low, high = 1 / est.ratio, 1 / est.high, 1 / est.low
        change = 1 - ratio
        worse_significant, better_significant = high < 1, low > 1
        base_value = batch * 1e9 / float(np.mean(base))
        cur_value = batch * 1e9 / float(np.mean(cur))
        unit = "images/s" if streams == 1 else "images/s per stream"
    else:
        ratio, low, high = est.ratio, est.low, est.high
        change = ratio - 1
        worse_significant, better_significant = low > 1, high < 1
        q = 50 if metric == "p50" else 99
        base_value, cur_value = (
            float(np.percentile(base, q)) / 1e6,
            float(np.percentile(cur, q)) / 1e6,
        )
        unit = "ms"
    verdict = verdict_of(change, threshold, worse_significant, better_significant)
    note = ""
    if np.ptp(base) == 0 and np.ptp(cur) == 0:
        note = "zero-variance samples: the ratio is exact"
    half_width = (high - low) / 2
    if verdict == INCONCLUSIVE:
        note = inconclusive_note(change, low, high)
    return Verdict(
        name,
        metric,
        verdict,
        base_value,
        cur_value,
        change,
        low,
        high,
        mann_whitney_p(base, cur),
        note,
        detectable=max(threshold, half_width),
        unit=unit,
    )


def inconclusive_note(change: float, low: float, high: float) -> str:
    return (
        f"{100 * change:.0f}% worse, but the 95% interval of the ratio ({low:.2f} to {high:.2f}) "
        "reaches no change: these runs vary too much to tell; measure in more rounds "
        "(bench --repeat) or compare interleaved (gate --paired)"
    )


def _flat(samples) -> np.ndarray:
    if isinstance(samples, np.ndarray):
        return samples
    return np.concatenate([np.asarray(g) for g in samples])


def compare_reports(
    baseline: LoadedReport,
    current: LoadedReport,
    thresholds: Thresholds,
    *,
    allow_env_mismatch: bool = False,
    seed: int = C.DEFAULT_SEED,
) -> GateResult:
    """History mode: ``baseline`` holds one past run or more (gate/modes.py); the thresholds
    come from their spread (gate/spread.py: baseline_spread), else are those for separate runs."""
    from alexnet_deploy.gate.spread import baseline_spread

    result = GateResult([], mode="history")
    spread = baseline_spread(baseline)
    if spread is None:
        thresholds = thresholds.for_separate_runs()
    for path, why in baseline.skipped:
        result.notes.append(f"history: left out {path.parent.name}: {why}")
    used = len(baseline.paths)
    result.notes.append(
        f"history: {used} report{'s' if used > 1 else ''} used ("
        + ", ".join(baseline.run_names) + ")"
    )  # fmt: skip
    if baseline.environment_keys != current.environment_keys:
        if not allow_env_mismatch:
            raise UsageError(
                "baseline and current reports come from different environments (CPU, cores or runtime "
                "versions differ): absolute timings do not compare",
                hint="gate machine-independently with --ratios, or re-measure the baseline here; "
                "--allow-env-mismatch compares anyway and flags the result",
            )
        result.env_mismatch = True
        result.notes.append(
            "ENVIRONMENTS DIFFER: absolute comparisons across machines are not trustworthy"
        )
    keys = sorted(set(baseline.rows) | set(current.rows), key=lambda k: k.sort_key())
    raised: list[float] = []
    for index, key in enumerate(keys):
        name = key.label
        if key not in current.rows or key not in baseline.rows:
            where = "current" if key not in current.rows else "baseline"
            result.verdicts.append(Verdict(name, "all", NOT_COMPARABLE, note=f"missing in {where}"))
            continue
        ran = (baseline.rows[key].computed_in, current.rows[key].computed_in)
        if all(ran) and ran[0] != ran[1]:  # read back from each runtime: not like with like
            note = f"computed in {ran[0]} in the baseline, {ran[1]} now: not like with like"
            result.verdicts.append(Verdict(name, "all", NOT_COMPARABLE, note=note))
            continue
        base, cur = baseline.samples.get(key), current.samples.get(key)
        counts = {
            "baseline": len(_flat(base)) if base else 0,
            "current": len(_flat(cur)) if cur else 0,
        }
        short = [(label, n) for label, n in counts.items() if n < C.GATE_MIN_SAMPLES]
        if short:
            text = ", ".join(f"{label} has {n}" for label, n in short)
            result.verdicts.append(
                Verdict(
                    name,
                    "speed",
                    NOT_COMPARABLE,
                    note=f"too few samples for the test ({text}; need {C.GATE_MIN_SAMPLES})",
                )
            )
        else:
            for metric in ("p50", "p99", "throughput"):
                asked = thresholds.values[metric]
                threshold = (spread.threshold(name, metric, asked) if spread else None) or asked
                verdict = _speed_verdict(
                    name, metric, base, cur, threshold, seed + index,
                    batch=key.batch, streams=key.concurrency,
                )  # fmt: skip
                verdict.threshold = threshold
                if threshold > asked:
                    raised.append(threshold)
                fewest = min(counts.values())
                if metric == "p99" and fewest < C.GATE_P99_MIN_SAMPLES:
                    verdict.verdict = NOT_JUDGED
                    verdict.note = (
                        f"p99 of {fewest} samples rests on {fewest // 100 or 'under one'} beyond it: "
                        f"reported, not judged (needs {C.GATE_P99_MIN_SAMPLES} samples a side; "
                        "raise bench --min-iterations)"
                    )
                result.verdicts.append(verdict)
        b_fid, c_fid = (
            baseline.rows[key].top1_agreement,
            current.rows[key].top1_agreement,
        )
        if b_fid is None or c_fid is None:
            result.verdicts.append(
                Verdict(name, "fidelity", NOT_COMPARABLE, note="no fidelity figures")
            )
        else:
            drop = 100 * (b_fid - c_fid)
            verdict = (
                REGRESSED
                if drop > thresholds.top1_budget_points
                else (IMPROVED if drop < -thresholds.top1_budget_points else UNCHANGED)
            )
            result.verdicts.append(
                Verdict(
                    name,
                    "fidelity",
                    verdict,
                    b_fid,
                    c_fid,
                    drop / 100,
                    note=f"top-1 agreement (as executed on each report's CPU) drop {drop:+.1f} points (budget {thresholds.top1_budget_points:g})",
                    unit="top-1 agreement",
                )
            )
    if spread is not None:
        result.notes.append(
            f"thresholds from measured run-to-run noise ({spread.source}): "
            f"{C.NOISE_SAFETY_FACTOR:g}x the largest change between two of those runs; "
            + (
                f"{len(raised)} check(s) raised above the threshold asked (up to "
                f"{100 * max(raised):.0f}%)"
                if raised
                else "none above the threshold asked"
            )
        )
    else:
        result.notes.append(
            "one past run, with no measured run-to-run noise: separate runs of one engine moved p50 "
            "by up to 20% on this project's machines (docs/gate-evaluation-unpaired.md), so "
            "thresholds not set with --threshold are those for separate runs ("
            + ", ".join(f"{m} {v:.0%}" for m, v in C.GATE_UNPAIRED_THRESHOLDS.items())
            + "). Add separate runs of the baseline to its history once (gate BASELINE CURRENT "
            "--measure-noise 3), or compare interleaved (--model M: paired) to see smaller changes"
        )
    blind = [
        v
        for v in result.comparable
        if v.detectable is not None
        and v.detectable > (v.threshold or thresholds.values[v.metric]) + 1e-12
    ]
    if blind:
        worst = max(blind, key=lambda v: v.detectable)
        result.notes.append(
            f"{len(blind)} check(s) cannot see a change as small as their threshold: these runs "
            f"vary more than that (worst: {worst.config} {worst.metric}, smallest detectable "
            f"change {100 * worst.detectable:.0f}%); measure longer or in rounds (bench --repeat)"
        )
    if baseline.is_history and baseline.runs:
        from alexnet_deploy.gate.history import history_view

        result.history = history_view(baseline, current)
    if not result.comparable:
        result.notes.append("no configuration could be compared")
    from alexnet_deploy.gate.stability import mark_unstable

    mark_unstable(result, baseline, current)
    return result
