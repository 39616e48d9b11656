"""A/A: the same configuration measured twice, interleaved, to see this machine's noise, and
thresholds derived from it. Also the injected-slowdown trials that show the gate detects a
real regression (scripts/gate-evaluation)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from alexnet_deploy.bench.config import MeasureRules
from alexnet_deploy.bench.measure import measure_latency
from alexnet_deploy.gate.compare import REGRESSED, _speed_verdict

# A derived threshold is this many times the largest |p50 change| seen between A/A pairs,
# and never below the floor: a margin over observed noise, not a tight fit to it.
SAFETY_FACTOR = 3.0
FLOOR = 0.02


def slowed(infer: Callable, fraction: float) -> Callable:
    """``infer`` made ``fraction`` slower: after each call, spin for that share of its time
    (busy-wait, not sleep, so the CPU stays occupied as real extra work would)."""

    def run(batch):
        start = time.perf_counter_ns()
        out = infer(batch)
        spent = time.perf_counter_ns() - start
        until = time.perf_counter_ns() + int(spent * fraction)
        while time.perf_counter_ns() < until:
            pass
        return out

    return run


@dataclass
class TrialOutcome:
    change: float
    ci_low: float
    ci_high: float
    flagged: bool


def paired_trials(
    infer_a: Callable,
    infer_b: Callable,
    batch: np.ndarray,
    rules: MeasureRules,
    trials: int,
    threshold: float,
    seed: int = 0,
    on_trial: Callable[[int, TrialOutcome], None] = lambda i, o: None,
) -> list[TrialOutcome]:
    """Each trial measures A and B back to back (order alternating) and gates B against A."""
    outcomes = []
    for i in range(trials):
        first, second = (infer_a, infer_b) if i % 2 == 0 else (infer_b, infer_a)
        m1 = measure_latency(first, batch, rules)
        m2 = measure_latency(second, batch, rules)
        a, b = (m1, m2) if i % 2 == 0 else (m2, m1)
        verdict = _speed_verdict("trial", "p50", a.samples_ns, b.samples_ns, threshold, seed + i)
        outcome = TrialOutcome(
            verdict.change, verdict.ci_low - 1, verdict.ci_high - 1, verdict.verdict == REGRESSED
        )
        outcomes.append(outcome)
        on_trial(i, outcome)
    return outcomes


def derive_threshold(aa: list[TrialOutcome]) -> float:
    worst = max(abs(o.change) for o in aa)
    return max(FLOOR, SAFETY_FACTOR * worst)
