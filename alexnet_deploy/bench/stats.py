"""Latency statistics from raw samples: order statistics, a distribution-free confidence
interval for the median, and the stopping rule that uses it."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Z95 = 1.959964  # two-sided 95% normal quantile


def median_ci(samples: np.ndarray, z: float = Z95) -> tuple[float, float]:
    """95% confidence interval of the median from order statistics (binomial, normal
    approximation): no assumption about the latency distribution, which is skewed."""
    ordered = np.sort(np.asarray(samples, dtype=np.float64))
    n = len(ordered)
    if n == 0:
        return (math.nan, math.nan)
    half = z * math.sqrt(n) / 2
    lo = max(0, math.floor(n / 2 - half) - 1)
    hi = min(n - 1, math.ceil(n / 2 + half) - 1)
    return float(ordered[lo]), float(ordered[hi])


def is_stable(samples: np.ndarray, rel_halfwidth: float) -> bool:
    """The stopping rule: the median's 95% CI lies within +-rel_halfwidth of the median."""
    if len(samples) < 10:
        return False
    median = float(np.median(samples))
    lo, hi = median_ci(samples)
    return median > 0 and (hi - lo) / 2 <= rel_halfwidth * median


@dataclass(frozen=True)
class LatencyStats:
    count: int
    min: float
    mean: float
    std: float
    max: float
    percentiles: dict[float, float]
    p50_ci_low: float
    p50_ci_high: float

    def as_columns(self, unit_scale: float = 1e-6, suffix: str = "_ms") -> dict[str, float]:
        """Flat columns in milliseconds (samples are nanoseconds)."""
        cols = {
            "samples": self.count,
            f"min{suffix}": self.min * unit_scale,
            f"mean{suffix}": self.mean * unit_scale,
            f"std{suffix}": self.std * unit_scale,
        }
        for q, value in self.percentiles.items():
            cols[f"p{q:g}{suffix}"] = value * unit_scale
        cols[f"max{suffix}"] = self.max * unit_scale
        cols[f"p50_ci_low{suffix}"] = self.p50_ci_low * unit_scale
        cols[f"p50_ci_high{suffix}"] = self.p50_ci_high * unit_scale
        return cols


def latency_stats(samples, percentiles=(50, 90, 95, 99)) -> LatencyStats:
    data = np.asarray(samples, dtype=np.float64)
    if data.size == 0:
        raise ValueError("no samples")
    qs = sorted(set(percentiles) | {50})
    values = np.percentile(data, qs)
    lo, hi = median_ci(data)
    return LatencyStats(
        count=int(data.size),
        min=float(data.min()),
        mean=float(data.mean()),
        std=float(data.std(ddof=1)) if data.size > 1 else 0.0,
        max=float(data.max()),
        percentiles={float(q): float(v) for q, v in zip(qs, values, strict=True)},
        p50_ci_low=lo,
        p50_ci_high=hi,
    )
