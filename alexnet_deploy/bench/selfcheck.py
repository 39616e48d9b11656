"""Is the harness honest? Two checks at batch 1 on the ONNX Runtime FP32 engine:

* overhead: the tool's runner against a bare ``session.run`` on the same optimized model, in
  interleaved pairs of blocks (alexnet_deploy/paired.py), so the machine's drift cancels;
* independent timing: the tool's own latency loop (bench/measure.py) against a separate
  Python process that runs the same calls and is timed from outside.

The outside timing is the wall from the moment the parent releases a loaded, warmed-up child
(it waits on stdin after printing ``ready``) to the child's exit, minus the same for a child
that runs no calls (its exit and teardown). Session loading, whose jitter (0.1-0.2 s for a
244 MB model) once dominated the figure, is outside the timed span. Each child runs between two
halves of the tool's loop, and the figure is the median of the per-round ratios with a
bootstrap interval.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from alexnet_deploy.bench.records import BenchRow
from alexnet_deploy.errors import AlexnetDeployError

PAIRS = 60
CALLS = 20
PROCESS_CALLS = 200
PROCESS_ROUNDS = 10
IDLE_CHILDREN = 3
TIMING_TARGET = 0.05

_CHILD_SCRIPT = """
import sys, numpy as np, onnxruntime as ort
so = ort.SessionOptions(); so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
s = ort.InferenceSession(sys.argv[1], sess_options=so, providers=["CPUExecutionProvider"])
x = np.random.default_rng(0).standard_normal((1, *[int(v) for v in sys.argv[3].split(",")])).astype(np.float32)
name = s.get_inputs()[0].name
for _ in range(30): s.run(None, {name: x})
print("ready", flush=True)
sys.stdin.readline()
for _ in range(int(sys.argv[2])): s.run(None, {name: x})
"""


def process_seconds(engine_file: Path, calls: int, shape: tuple[int, ...]) -> float:
    """Wall seconds, timed by this process, from releasing a ready child to its exit."""
    shape_text = ",".join(str(v) for v in shape)
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD_SCRIPT, str(engine_file), str(calls), shape_text],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    ready = child.stdout.readline().strip()
    if ready != "ready":
        child.kill()
        _, err = child.communicate()
        last = (err.strip().splitlines() or ["no output"])[-1]
        raise AlexnetDeployError(
            f"the independent timing process could not run {engine_file}: {last}",
            hint="check that the engine file loads with 'alexnet-deploy bench' first",
        )
    start = time.perf_counter()
    child.stdin.write("go\n")
    child.stdin.flush()
    code = child.wait()
    elapsed = time.perf_counter() - start
    if code != 0:
        raise AlexnetDeployError(
            f"the independent timing process failed (exit {code}): {child.stderr.read().strip()}"
        )
    return elapsed


def independent_timing(
    infer, engine_file: Path, batch: np.ndarray, calls: int, rounds: int
) -> dict:
    """Per round: a timed child runs ``calls`` calls, sandwiched between two halves of the
    tool's own latency loop (so a steady drift of the machine cancels within the round); the
    round's ratio is the tool's p50 over the child's per-call time."""
    from alexnet_deploy.bench.config import MeasureRules
    from alexnet_deploy.bench.measure import CHECK_EVERY, measure_latency
    from alexnet_deploy.paired import judge_ratios

    if calls % (2 * CHECK_EVERY):
        raise ValueError(f"calls must be a multiple of {2 * CHECK_EVERY}")
    # exactly calls/2 samples per half from the tool's own loop: no warm-up (done), no time
    # limits, and a stability bound that always holds once the minimum count is reached
    rules = MeasureRules(
        warmup_iterations=0,
        warmup_seconds=0,
        min_iterations=calls // 2,
        min_seconds=1e-9,
        max_seconds=1e9,
        stability=10.0,
    )
    shape = tuple(batch.shape[1:])
    # a child that runs no calls: its exit and teardown, subtracted from every timed child
    idle = float(np.median([process_seconds(engine_file, 0, shape) for _ in range(IDLE_CHILDREN)]))
    tool_p50, tool_mean, child = [], [], []
    for _ in range(rounds):
        first = measure_latency(infer, batch, rules).samples_ns
        work = process_seconds(engine_file, calls, shape) - idle
        samples = np.concatenate([first, measure_latency(infer, batch, rules).samples_ns]) / 1e6
        child.append(work / calls * 1e3)
        tool_p50.append(float(np.median(samples)))
        tool_mean.append(float(samples.mean()))
    p50_ratio = judge_ratios(np.array(tool_p50) / np.array(child), TIMING_TARGET)
    mean_ratio = judge_ratios(np.array(tool_mean) / np.array(child), TIMING_TARGET)
    return {
        "tool_p50_ms": float(np.median(tool_p50)),
        "tool_mean_ms": float(np.median(tool_mean)),
        "process_ms": float(np.median(child)),
        "idle_process_s": idle,
        "difference": p50_ratio.change,
        "ci": [p50_ratio.ci_low, p50_ratio.ci_high],
        "mean_difference": mean_ratio.change,
        "rounds": rounds,
        "calls": calls,
        "target": TIMING_TARGET,
        "met": abs(p50_ratio.change) <= TIMING_TARGET,
        "text": f"tool p50 {np.median(tool_p50):.3f} ms vs independent whole-process timing "
        f"{np.median(child):.3f} ms per call: {100 * p50_ratio.change:+.1f}% "
        f"(95% interval {100 * p50_ratio.ci_low:+.1f}..{100 * p50_ratio.ci_high:+.1f}%; tool mean "
        f"{100 * mean_ratio.change:+.1f}%; median of {rounds} rounds of {calls} calls, each child "
        "between two halves of the tool's loop; target within 5%)",
    }


def self_check_comparisons(
    model: Path,
    rows: list[BenchRow],  # the run's rows: this check measures its own
    work_dir: Path | None = None,
    pairs: int = PAIRS,
    process_calls: int = PROCESS_CALLS,
    process_rounds: int = PROCESS_ROUNDS,
) -> dict:
    from alexnet_deploy.engines.build import build_engine
    from alexnet_deploy.engines.options import BuildOptions
    from alexnet_deploy.engines.ort import _session_options, create_session
    from alexnet_deploy.engines.registry import get_backend
    from alexnet_deploy.paired import interleaved_ratios, judge_ratios

    work_dir = work_dir or Path(model).parent.parent.parent
    engine, _ = build_engine(model, "ort", BuildOptions(), work_dir)
    shape = engine.sidecar.image_shape
    batch = np.random.default_rng(0).standard_normal((1, *shape)).astype(np.float32)
    session = create_session(engine.path, ["CPUExecutionProvider"], _session_options(None, False))
    name = session.get_inputs()[0].name

    def bare(x):
        return session.run(None, {name: x})

    with get_backend("ort").runner(engine) as runner:
        for _ in range(10):
            runner.infer(batch)
            bare(batch)
        # paired blocks, alternating order: the machine's drift cancels in each pair's ratio
        overhead = judge_ratios(interleaved_ratios(bare, runner.infer, batch, pairs, CALLS), 0.02)
        session = None  # its idle thread pool must not compete with the child processes
        timing = independent_timing(runner.infer, engine.path, batch, process_calls, process_rounds)
    return {
        "harness_overhead": {
            "value": overhead.change,
            "ci": [overhead.ci_low, overhead.ci_high],
            "target": 0.02,
            "met": overhead.change <= 0.02,
            "pairs": pairs,
            "calls": CALLS,
            "text": f"harness overhead vs a bare session.run loop, ort fp32 batch 1: {100 * overhead.change:+.2f}% "
            f"(95% interval {100 * overhead.ci_low:+.2f}..{100 * overhead.ci_high:+.2f}%; target <= 2%; "
            f"{pairs} interleaved pairs of {CALLS}-call blocks)",
        },
        "independent_timing": timing,
    }
