"""Is a change real? A seeded bootstrap interval on the ratio of a statistic (median, p99 or
mean) between two sets of raw latency samples.

Why the bootstrap on the ratio of medians: latency samples are skewed and heavy-tailed, often
multi-modal, so no parametric test fits; the ratio is what the threshold speaks about (a 10%
slowdown is a ratio of 1.10), and its interval answers both questions at once: how big, and
how sure. A rank test (Mann-Whitney U) says "the distributions differ" but flags tiny shifts on
large samples and says nothing about size; it is reported alongside as a diagnostic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alexnet_deploy import constants as C


@dataclass(frozen=True)
class RatioEstimate:
    ratio: float  # current / baseline
    low: float
    high: float

    @property
    def change(self) -> float:
        return self.ratio - 1.0


def _stat(samples: np.ndarray, statistic: str, axis=-1) -> np.ndarray:
    if statistic == "median":
        return np.median(samples, axis=axis)
    if statistic == "mean":
        return np.mean(samples, axis=axis)
    if statistic == "p99":
        return np.percentile(samples, 99, axis=axis)
    raise ValueError(statistic)


def _as_groups(samples) -> list[np.ndarray]:
    """Samples as rounds: a list of arrays (one per measured round) or one flat array."""
    if isinstance(samples, np.ndarray) and samples.ndim == 1:
        return [samples.astype(np.float64)]
    return [np.asarray(g, dtype=np.float64) for g in samples if len(g)]


def _resample(
    groups: list[np.ndarray], rng: np.random.Generator, n: int, statistic: str
) -> np.ndarray:
    """``n`` bootstrap replicates of the statistic. With several rounds the resampling is
    hierarchical: draw rounds with replacement, then samples within each drawn round, so the
    interval carries the run-to-run variation (a stall that hit one round) and not only the
    call-to-call variation inside a run."""
    if len(groups) == 1:
        data = groups[0]
        return _stat(data[rng.integers(0, len(data), (n, len(data)))], statistic)
    out = np.empty(n)
    for i in range(n):
        picks = rng.integers(0, len(groups), len(groups))
        drawn = [groups[p][rng.integers(0, len(groups[p]), len(groups[p]))] for p in picks]
        out[i] = _stat(np.concatenate(drawn), statistic)
    return out


def bootstrap_ratio(
    baseline,
    current,
    statistic: str = "median",
    resamples: int = C.GATE_BOOTSTRAP_RESAMPLES,
    seed: int = C.DEFAULT_SEED,
    confidence: float = 0.95,
) -> RatioEstimate:
    """Percentile-bootstrap interval of stat(current) / stat(baseline). Each side is a flat
    array of samples or a list of per-round arrays (then resampled hierarchically)."""
    rng = np.random.default_rng(seed)
    base_groups, cur_groups = _as_groups(baseline), _as_groups(current)
    base, cur = np.concatenate(base_groups), np.concatenate(cur_groups)
    point = float(_stat(cur, statistic) / _stat(base, statistic))
    if np.ptp(base) == 0 and np.ptp(cur) == 0:
        return RatioEstimate(point, point, point)  # zero variance: the ratio is exact
    if len(base_groups) == 1 and len(cur_groups) == 1:
        n = max(1, min(resamples, 2_000_000 // max(len(base), len(cur))))
        chunks = []
        for done in range(0, resamples, n):
            k = min(n, resamples - done)
            chunks.append(
                _resample(cur_groups, rng, k, statistic) / _resample(base_groups, rng, k, statistic)
            )
        ratios = np.concatenate(chunks)
    else:
        ratios = _resample(cur_groups, rng, resamples, statistic) / _resample(
            base_groups, rng, resamples, statistic
        )
    alpha = (1 - confidence) / 2
    low, high = np.quantile(ratios, [alpha, 1 - alpha])
    return RatioEstimate(point, float(low), float(high))


def mann_whitney_p(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided Mann-Whitney U p-value (scipy.stats.mannwhitneyu: exact where a sample has 8
    values or fewer and none tie, else the normal approximation with tie and continuity
    correction)."""
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(a, b, alternative="two-sided").pvalue)
