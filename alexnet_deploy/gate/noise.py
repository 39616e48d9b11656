"""A/A: one configuration against itself, interleaved, to measure this machine's noise and
derive thresholds from it; and the injected-slowdown trials that show a real regression is
caught (scripts/gate-evaluation).

Interleaving is what makes this work on a shared machine: back-to-back runs of a few seconds
differed by up to +-17% here (other tenants come and go), but blocks of A and B alternating
every ~0.1 s see the same machine, so the ratio of each pair of blocks cancels the drift. The
estimate is the median of the pair ratios; its interval is a bootstrap over pairs.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from alexnet_deploy import constants as C
from alexnet_deploy.paired import TrialOutcome, interleaved_ratios, judge_ratios

# A derived threshold is this many times the largest A/A change, and never below the floor:
# a margin over the observed noise, not a tight fit to it.
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


def paired_trials(
    infer_a: Callable,
    infer_b: Callable,
    batch,
    trials: int,
    threshold: float,
    *,
    pairs: int = C.AA_PAIRS,
    calls: int = C.AA_BLOCK_CALLS,
    warmup: int = 10,
    seed: int = 0,
    on_trial: Callable[[int, TrialOutcome], None] = lambda i, o: None,
) -> list[TrialOutcome]:
    for _ in range(warmup):
        infer_a(batch)
        infer_b(batch)
    outcomes = []
    for i in range(trials):
        outcome = judge_ratios(
            interleaved_ratios(infer_a, infer_b, batch, pairs, calls), threshold, seed + i
        )
        outcomes.append(outcome)
        on_trial(i, outcome)
    return outcomes


def derive_threshold(aa: list[TrialOutcome]) -> float:
    return max(FLOOR, SAFETY_FACTOR * max(abs(o.change) for o in aa))


def check_trials(trials: int) -> None:
    from alexnet_deploy.errors import UsageError

    if trials < 2:
        raise UsageError(f"--trials must be at least 2, got {trials}")


def aa_on_engine(
    engine,
    batch: int,
    trials: int,
    threshold: float,
    on_trial: Callable[[int, TrialOutcome], None] = lambda i, o: None,
) -> list[TrialOutcome]:
    """``gate --aa``: one built engine against itself, interleaved, ``trials`` times."""
    from alexnet_deploy.engines.registry import get_backend

    check_trials(trials)
    data = (
        np.random.default_rng(0)
        .standard_normal((batch, *engine.sidecar.image_shape))
        .astype(np.float32)
    )
    with get_backend(engine.backend).runner(engine) as runner:
        return paired_trials(runner.infer, runner.infer, data, trials, threshold, on_trial=on_trial)
