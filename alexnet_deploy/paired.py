"""Paired, interleaved comparisons of two callables on one machine: blocks of A and B
alternating (A B, B A, ...), the ratio of each pair's block medians, and a bootstrap verdict
over pairs. Used by bench's self-check and by the gate (A/A noise, injected slowdowns): the one
statistics module both stand on, so neither imports the other for it.

Interleaving is what makes this work on a shared machine: back-to-back runs of a few seconds
differ by up to +-17% here, but blocks alternating every ~0.1 s see the same machine, so each
pair's ratio cancels the drift.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from alexnet_deploy import constants as C


@dataclass
class TrialOutcome:
    change: float  # median pair ratio B/A, minus 1
    ci_low: float  # interval of that change
    ci_high: float
    flagged: bool  # regressed at the trial's threshold


def _block_median(infer: Callable, batch, calls: int) -> float:
    samples = []
    for _ in range(calls):
        t0 = time.perf_counter_ns()
        infer(batch)
        samples.append(time.perf_counter_ns() - t0)
    return float(np.median(samples))


def interleaved_ratios(
    infer_a: Callable, infer_b: Callable, batch, pairs: int, calls: int
) -> np.ndarray:
    """``pairs`` ratios median(B block)/median(A block), the order alternating each pair."""
    ratios = []
    for k in range(pairs):
        if k % 2 == 0:
            a = _block_median(infer_a, batch, calls)
            b = _block_median(infer_b, batch, calls)
        else:
            b = _block_median(infer_b, batch, calls)
            a = _block_median(infer_a, batch, calls)
        ratios.append(b / a)
    return np.asarray(ratios)


def judge_ratios(ratios: np.ndarray, threshold: float, seed: int = C.DEFAULT_SEED) -> TrialOutcome:
    """Regressed when the median pair ratio exceeds 1 + threshold and its bootstrap interval
    lies above 1 (the gate's rule, on paired data)."""
    rng = np.random.default_rng(seed)
    boot = np.median(
        ratios[rng.integers(0, len(ratios), (C.GATE_BOOTSTRAP_RESAMPLES, len(ratios)))], axis=1
    )
    low, high = np.quantile(boot, [0.025, 0.975])
    change = float(np.median(ratios)) - 1
    return TrialOutcome(change, float(low) - 1, float(high) - 1, change > threshold and low > 1)
