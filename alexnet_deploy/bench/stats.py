"""Latency statistics from raw samples: order statistics, a distribution-free confidence
interval for the median, the stopping rule that uses it, and the stability verdict of a row."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from alexnet_deploy import constants as C

Z95 = 1.959964  # two-sided 95% normal quantile


def median_ci(samples: np.ndarray, z: float = Z95) -> tuple[float, float]:
    """95% confidence interval of the median from order statistics (binomial, normal
    approximation): no assumption about the latency distribution, which is skewed."""
    return quantile_ci(samples, 0.5, z)


def quantile_ci(samples: np.ndarray, q: float, z: float = Z95) -> tuple[float, float]:
    """95% confidence interval of the ``q`` quantile (0.99: the p99) from order statistics:
    the ranks n*q -+ z*sqrt(n*q*(1-q)) (binomial, normal approximation), clipped to the samples;
    distribution-free. At q = 0.5 it is exactly :func:`median_ci`'s interval."""
    ordered = np.sort(np.asarray(samples, dtype=np.float64))
    n = len(ordered)
    if n == 0:
        return (math.nan, math.nan)
    half = z * math.sqrt(n * q * (1 - q))
    lo = max(0, math.floor(n * q - half) - 1)
    hi = min(n - 1, math.ceil(n * q + half) - 1)
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

    def scaled(self, unit_scale: float) -> LatencyStats:
        """The same statistics in another unit (``1e-6``: nanoseconds to milliseconds)."""
        return LatencyStats(
            count=self.count,
            min=self.min * unit_scale,
            mean=self.mean * unit_scale,
            std=self.std * unit_scale,
            max=self.max * unit_scale,
            percentiles={q: v * unit_scale for q, v in self.percentiles.items()},
            p50_ci_low=self.p50_ci_low * unit_scale,
            p50_ci_high=self.p50_ci_high * unit_scale,
        )

    @classmethod
    def from_columns(cls, columns: Mapping, suffix: str = "_ms") -> LatencyStats | None:
        """The inverse of ``as_columns(unit_scale=1.0)``: the statistics a report row holds, in
        its unit (None when the row has none: a failed row)."""
        if columns.get(f"p50{suffix}") is None:
            return None
        pattern = re.compile(rf"p(\d+(?:\.\d+)?){re.escape(suffix)}")
        return cls(
            count=columns["samples"],
            min=columns[f"min{suffix}"],
            mean=columns[f"mean{suffix}"],
            std=columns[f"std{suffix}"],
            max=columns[f"max{suffix}"],
            percentiles={
                float(found[1]): value
                for name, value in columns.items()
                if (found := pattern.fullmatch(name))
            },
            p50_ci_low=columns[f"p50_ci_low{suffix}"],
            p50_ci_high=columns[f"p50_ci_high{suffix}"],
        )


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


# what an unstable row most likely means, and what to do: every output that flags one says it
UNSTABLE_CAUSE = "other load on the machine, or thermal or frequency changes"
UNSTABLE_HINT = "rerun on a quieter machine, in rounds (--repeat 3)"


@dataclass(frozen=True)
class Stability:
    """Whether a row's measurements agree with themselves; ``reasons`` says where they do not
    (none: stable)."""

    reasons: tuple[str, ...] = ()

    @property
    def unstable(self) -> bool:
        return bool(self.reasons)

    @property
    def text(self) -> str:
        return "; ".join(self.reasons)

    def columns(self) -> dict:
        """A report row's columns: ``unstable`` and ``instability`` (the reasons, or "")."""
        return {"unstable": self.unstable, "instability": self.text}

    @classmethod
    def from_columns(cls, columns: Mapping) -> Stability | None:
        """The verdict a report row recorded (None: written before rows carried one)."""
        if columns.get("unstable") is None:
            return None
        text = columns.get("instability") or ""
        if not columns["unstable"]:
            return cls()
        return cls(tuple(text.split("; ")) if text else ("unstable",))


def _ms(ns: float) -> str:
    return f"{ns / 1e6:.3g}"


def _round_reasons(samples: np.ndarray, one_at_a_time: bool) -> list[str]:
    found = []
    n = len(samples)
    if n >= C.BENCH_STABILITY_MIN_SAMPLES:
        first, second = samples[: n // 2], samples[n // 2 :]
        a, b = float(np.median(first)), float(np.median(second))
        (a_lo, a_hi), (b_lo, b_hi) = median_ci(first), median_ci(second)
        if a > 0 and abs(b / a - 1) > C.BENCH_UNSTABLE_DRIFT and (a_hi < b_lo or b_hi < a_lo):
            found.append(f"halves disagree: p50 {_ms(a)}, then {_ms(b)} ms")
    if one_at_a_time and n:
        median = float(np.median(samples))
        lo, hi = median_ci(samples)
        if median > 0 and (hi - lo) / 2 > C.BENCH_UNSTABLE_CI * median:
            found.append(
                f"p50 not pinned down: 95% interval {_ms(lo)}-{_ms(hi)} ms "
                f"(+-{(hi - lo) / 2 / median:.0%})"
            )
        factor = C.BENCH_UNSTABLE_MODE_FACTOR
        away = float(np.mean((samples > factor * median) | (samples < median / factor)))
        if away > C.BENCH_UNSTABLE_MODE_SHARE:
            found.append(
                f"two speeds: {away:.0%} of calls off the p50 by over {factor:g}x (p10 "
                f"{_ms(np.percentile(samples, 10))}, p90 {_ms(np.percentile(samples, 90))} ms)"
            )
    return found


def stability(
    rounds: Sequence[np.ndarray], round_rates: Sequence[float] = (), *, one_at_a_time: bool = True
) -> Stability:
    """The one stability verdict of a bench row (its reports, the headline and the gate read
    it). ``rounds``: each round's latency samples in nanoseconds, in the order measured;
    ``round_rates``: each round's images/s; ``one_at_a_time``: latency mode, where one request
    is in flight and a quiet machine's latencies cluster around one value. Unstable when the
    rounds disagree, when a round's halves disagree beyond their intervals, or (latency mode)
    when a round's p50 is not pinned down or its calls run at two speeds: the thresholds and
    why are in constants.py."""
    reasons = []
    rates = np.asarray(round_rates, dtype=np.float64)
    if len(rates) > 1 and rates.mean() > 0:
        cv = float(rates.std(ddof=1) / rates.mean())
        if cv > C.BENCH_UNSTABLE_ROUNDS_CV:
            reasons.append(
                f"rounds disagree: {rates.min():.3g} to {rates.max():.3g} images/s (std dev "
                f"{cv:.0%} of mean)"
            )
    for index, samples in enumerate(rounds):
        where = f"round {index + 1}: " if len(rounds) > 1 else ""
        found = _round_reasons(np.asarray(samples, dtype=np.float64), one_at_a_time)
        reasons += [where + reason for reason in found]
    return Stability(tuple(reasons))
