"""The timed loops. Each times synchronized work (runners return host arrays, so the work is
done when ``infer`` returns) on pre-generated inputs, after warm-up, and keeps every raw
latency sample in nanoseconds."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from alexnet_deploy.bench.config import MeasureRules
from alexnet_deploy.bench.records import ServerResult
from alexnet_deploy.bench.stats import is_stable

Infer = Callable[[np.ndarray], object]
CHECK_EVERY = 10  # evaluate the stopping rule every N samples (it sorts the samples)


@dataclass
class Measurement:
    samples_ns: np.ndarray  # one latency per request
    wall_seconds: float
    requests: int
    batch: int
    stop_reason: str
    concurrency: int = 1  # requests in flight
    target_rate: float | None = None  # server mode: the Poisson arrival rate asked for
    server: ServerResult | None = None  # server mode: the rate found within the bound

    @property
    def inferences_per_second(self) -> float:
        return self.requests / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def images_per_second(self) -> float:
        return self.inferences_per_second * self.batch


def warm_up(infer: Infer, batch: np.ndarray, rules: MeasureRules) -> None:
    start = time.perf_counter()
    done = 0
    while done < rules.warmup_iterations or time.perf_counter() - start < rules.warmup_seconds:
        infer(batch)
        done += 1


def measure_latency(
    infer: Infer, batch: np.ndarray, rules: MeasureRules, clock=time.perf_counter_ns
) -> Measurement:
    """One request at a time until the minimums are met and the median is stable, or the
    time cap is reached."""
    warm_up(infer, batch, rules)
    samples: list[int] = []
    min_ns, max_ns = int(rules.min_seconds * 1e9), int(rules.max_seconds * 1e9)
    begin = clock()
    reason = "time cap"
    while True:
        t0 = clock()
        infer(batch)
        t1 = clock()
        samples.append(t1 - t0)
        elapsed = t1 - begin
        if elapsed >= max_ns:
            break
        if (
            len(samples) >= rules.min_iterations
            and elapsed >= min_ns
            and len(samples) % CHECK_EVERY == 0
            and is_stable(np.asarray(samples), rules.stability)
        ):
            reason = "stable"
            break
    wall = (clock() - begin) / 1e9
    return Measurement(np.asarray(samples, dtype=np.int64), wall, len(samples), len(batch), reason)


def measure_throughput(workers: list[Infer], batch: np.ndarray, rules: MeasureRules) -> Measurement:
    """``len(workers)`` requests in flight, one per thread, for at least min_seconds and
    min_iterations (capped at max_seconds)."""
    for infer in workers:
        warm_up(infer, batch, rules)
    lock = threading.Lock()
    samples: list[int] = []
    stop = threading.Event()
    min_ns, max_ns = int(rules.min_seconds * 1e9), int(rules.max_seconds * 1e9)
    begin = time.perf_counter_ns()

    def loop(infer: Infer) -> None:
        while not stop.is_set():
            t0 = time.perf_counter_ns()
            infer(batch)
            t1 = time.perf_counter_ns()
            with lock:
                samples.append(t1 - t0)
                elapsed = t1 - begin
                if elapsed >= max_ns or (
                    elapsed >= min_ns and len(samples) >= rules.min_iterations
                ):
                    stop.set()

    threads = [threading.Thread(target=loop, args=(w,), daemon=True) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = (time.perf_counter_ns() - begin) / 1e9
    reason = "time cap" if wall * 1e9 >= max_ns else "minimums met"
    return Measurement(
        np.asarray(samples, dtype=np.int64),
        wall,
        len(samples),
        len(batch),
        reason,
        concurrency=len(workers),
    )


def run_poisson(
    workers: list[Infer], batch: np.ndarray, rate: float, seconds: float, seed: int
) -> Measurement:
    """Open-loop arrivals at ``rate`` requests/s (exponential gaps, seeded) served by the
    workers; a request's latency runs from its arrival, so queueing counts."""
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(1.0 / rate, size=max(1, int(rate * seconds * 1.5) + 10))
    arrivals = np.cumsum(gaps)
    arrivals = arrivals[arrivals <= seconds]
    pending: queue.Queue = queue.Queue()
    samples: list[int] = []
    lock = threading.Lock()
    begin = time.perf_counter_ns()

    def serve(infer: Infer) -> None:
        while True:
            arrival_ns = pending.get()
            if arrival_ns is None:
                return
            infer(batch)
            done = time.perf_counter_ns()
            with lock:
                samples.append(done - arrival_ns)

    threads = [threading.Thread(target=serve, args=(w,), daemon=True) for w in workers]
    for t in threads:
        t.start()
    for offset in arrivals:
        due = begin + int(offset * 1e9)
        delay = (due - time.perf_counter_ns()) / 1e9
        if delay > 0:
            time.sleep(delay)
        pending.put(due)
    for _ in threads:
        pending.put(None)
    for t in threads:
        t.join()
    wall = (time.perf_counter_ns() - begin) / 1e9
    return Measurement(
        np.asarray(samples, dtype=np.int64),
        wall,
        len(samples),
        len(batch),
        "schedule done",
        concurrency=len(workers),
        target_rate=rate,
    )


def measure_server(
    workers: list[Infer],
    batch: np.ndarray,
    rules: MeasureRules,
    bound_ms: float,
    seed: int,
    steps: int = 6,
) -> Measurement:
    """MLPerf-style server scenario: search (bisection) the highest Poisson arrival rate whose
    p99 latency stays within ``bound_ms``; return the measurement at that rate."""
    for infer in workers:
        warm_up(infer, batch, rules)
    probe = measure_latency(
        workers[0],
        batch,
        MeasureRules(
            warmup_iterations=0,
            warmup_seconds=0,
            min_iterations=10,
            min_seconds=0.2,
            max_seconds=1.0,
            stability=0.05,
        ),
    )
    capacity = len(workers) / (float(np.median(probe.samples_ns)) / 1e9)
    low, high = 0.0, capacity * 1.2
    best: Measurement | None = None
    trial_seconds = max(rules.min_seconds, 1.0)
    for step in range(steps):
        rate = (low + high) / 2 if best is not None or step else capacity * 0.5
        result = run_poisson(workers, batch, rate, trial_seconds, seed + step)
        p99 = float(np.percentile(result.samples_ns, 99)) / 1e6 if result.requests else float("inf")
        if p99 <= bound_ms and result.requests >= 5:
            low = rate
            best = result
        else:
            high = rate
    meets_bound = best is not None
    if best is None:
        best = run_poisson(workers, batch, max(low, capacity * 0.05), trial_seconds, seed + steps)
    found = ServerResult(best.requests / best.wall_seconds, meets_bound, bound_ms)
    return replace(best, stop_reason="rate search", server=found)
