"""Statistics against numpy on known samples, and the stopping rule."""

from __future__ import annotations

import numpy as np
import pytest

from alexnet_deploy.bench.config import MeasureRules
from alexnet_deploy.bench.measure import measure_latency
from alexnet_deploy.bench.stats import is_stable, latency_stats, median_ci


def test_stats_match_numpy():
    samples = np.random.default_rng(0).lognormal(mean=15, sigma=0.3, size=1001)
    stats = latency_stats(samples, percentiles=(50, 90, 95, 99, 99.9))
    assert stats.count == 1001
    assert stats.min == samples.min() and stats.max == samples.max()
    assert stats.mean == pytest.approx(samples.mean())
    assert stats.std == pytest.approx(samples.std(ddof=1))
    for q in (50, 90, 95, 99, 99.9):
        assert stats.percentiles[q] == pytest.approx(np.percentile(samples, q))
    cols = stats.as_columns()
    assert cols["p99.9_ms"] == pytest.approx(np.percentile(samples, 99.9) / 1e6)


def test_median_ci_covers_the_true_median_about_95_percent_of_the_time():
    rng = np.random.default_rng(1)
    true_median = np.exp(2.0)  # lognormal(2, 1) median
    hits = 0
    for _ in range(400):
        lo, hi = median_ci(rng.lognormal(2.0, 1.0, size=60))
        hits += lo <= true_median <= hi
    assert 0.92 <= hits / 400 <= 0.99


def test_stability_rule():
    rng = np.random.default_rng(2)
    tight = rng.normal(1000, 5, size=200)
    wide = rng.exponential(1000, size=30)
    assert is_stable(tight, 0.02)
    assert not is_stable(wide, 0.02)
    assert not is_stable(tight[:5], 0.5)  # too few samples to judge


class FakeClock:
    """A deterministic clock: each call to infer advances time by the next latency."""

    def __init__(self, latencies_ns):
        self.now = 0
        self.latencies = iter(latencies_ns)

    def __call__(self):
        return self.now

    def work(self, _batch):
        self.now += next(self.latencies)


def test_stopping_rule_stops_when_stable_after_minimums():
    clock = FakeClock(np.full(100_000, 1_000_000))  # 1 ms, perfectly stable
    rules = MeasureRules(
        warmup_iterations=0,
        warmup_seconds=0,
        min_iterations=50,
        min_seconds=0.1,
        max_seconds=10,
        stability=0.01,
    )
    m = measure_latency(clock.work, np.zeros((1, 1), np.float32), rules, clock=clock)
    assert m.stop_reason == "stable"
    assert m.requests >= 100  # min_seconds 0.1 s at 1 ms per call, checked every 10
    assert m.requests <= 110


def test_stopping_rule_hits_the_time_cap_when_noisy():
    noisy = np.random.default_rng(3).exponential(5_000_000, size=100_000).astype(np.int64) + 1
    clock = FakeClock(noisy)
    rules = MeasureRules(
        warmup_iterations=0,
        warmup_seconds=0,
        min_iterations=10,
        min_seconds=0.05,
        max_seconds=0.5,
        stability=0.001,
    )
    m = measure_latency(clock.work, np.zeros((1, 1), np.float32), rules, clock=clock)
    assert m.stop_reason == "time cap"
    assert m.samples_ns.sum() >= 0.5e9 - 6e7
