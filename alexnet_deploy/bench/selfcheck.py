"""Is the harness honest? Two checks at batch 1 on the ONNX Runtime FP32 engine:

* overhead: the tool's runner against a bare ``session.run`` on the same optimized model, in
  interleaved pairs of blocks (alexnet_deploy/gate/noise.py), so the machine's drift cancels;
* independent timing: a separate Python process runs N inferences and is timed from outside
  (wall of N runs minus wall of 0 runs, over N), against the tool's mean.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np

PAIRS = 30
CALLS = 20
# a fresh process's start-up jitter (~0.1-0.2 s) must be small against the work it times
PROCESS_CALLS = 800
PROCESS_ROUNDS = 3

_PROCESS_SCRIPT = """
import sys, numpy as np, onnxruntime as ort
so = ort.SessionOptions(); so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
s = ort.InferenceSession(sys.argv[1], sess_options=so, providers=["CPUExecutionProvider"])
x = np.random.default_rng(0).standard_normal((1, *[int(v) for v in sys.argv[3].split(",")])).astype(np.float32)
name = s.get_inputs()[0].name
for _ in range(30): s.run(None, {name: x})
for _ in range(int(sys.argv[2])): s.run(None, {name: x})
"""


def _process_seconds(engine_file: Path, calls: int, shape: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", _PROCESS_SCRIPT, str(engine_file), str(calls), shape], check=True
    )
    return time.perf_counter() - start


def self_check_comparisons(model: Path, rows: list[dict], work_dir: Path | None = None) -> dict:
    from alexnet_deploy.engines.build import build_engine
    from alexnet_deploy.engines.options import BuildOptions
    from alexnet_deploy.engines.ort import _session_options, create_session
    from alexnet_deploy.engines.registry import get_backend
    from alexnet_deploy.gate.noise import interleaved_ratios, judge_ratios

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
        overhead = judge_ratios(interleaved_ratios(bare, runner.infer, batch, PAIRS, CALLS), 0.02)
        # independent timing: per round, the tool times PROCESS_CALLS calls, then a fresh process
        # runs them and a fresh process runs none; the difference of the two walls is the work
        shape_text = ",".join(str(v) for v in shape)
        tool_ms_rounds, process_ms_rounds = [], []
        for _ in range(PROCESS_ROUNDS):
            start = time.perf_counter_ns()
            for _ in range(PROCESS_CALLS):
                runner.infer(batch)
            tool_ms_rounds.append((time.perf_counter_ns() - start) / PROCESS_CALLS / 1e6)
            with_calls = _process_seconds(engine.path, PROCESS_CALLS, shape_text)
            without = _process_seconds(engine.path, 0, shape_text)
            process_ms_rounds.append((with_calls - without) / PROCESS_CALLS * 1e3)
    tool_ms, per_call_ms = float(np.median(tool_ms_rounds)), float(np.median(process_ms_rounds))
    difference = float(np.median(np.array(tool_ms_rounds) / np.array(process_ms_rounds))) - 1
    return {
        "harness_overhead": {
            "value": overhead.change,
            "ci": [overhead.ci_low, overhead.ci_high],
            "target": 0.02,
            "met": overhead.change <= 0.02,
            "pairs": PAIRS,
            "calls": CALLS,
            "text": f"harness overhead vs a bare session.run loop, ort fp32 batch 1: {100 * overhead.change:+.2f}% "
            f"(95% interval {100 * overhead.ci_low:+.2f}..{100 * overhead.ci_high:+.2f}%; target <= 2%; "
            f"{PAIRS} interleaved pairs of {CALLS}-call blocks)",
        },
        "independent_timing": {
            "tool_ms": tool_ms,
            "process_ms": per_call_ms,
            "difference": difference,
            "met": abs(difference) <= 0.05,
            "text": f"tool {tool_ms:.3f} ms vs independent whole-process timing {per_call_ms:.3f} ms per call "
            f"({100 * difference:+.1f}%, median of {PROCESS_ROUNDS} interleaved rounds of {PROCESS_CALLS} "
            "calls, target within 5%)",
        },
    }
