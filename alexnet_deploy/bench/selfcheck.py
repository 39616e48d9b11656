"""Is the harness honest? Two checks at batch 1 on the ONNX Runtime FP32 engine:

* overhead: the tool's timed loop (runner.infer with per-call clock reads) against a bare
  ``session.run`` loop on the same optimized model, interleaved in rounds so drift hits both;
* independent timing: a separate Python process runs N inferences and is timed from outside
  (wall of N runs minus wall of 0 runs, over N), against the tool's mean.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROUNDS = 5
CALLS = 60
PROCESS_CALLS = 200

_PROCESS_SCRIPT = """
import sys, numpy as np, onnxruntime as ort
so = ort.SessionOptions(); so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
s = ort.InferenceSession(sys.argv[1], sess_options=so, providers=["CPUExecutionProvider"])
x = np.random.default_rng(0).standard_normal((1, *[int(v) for v in sys.argv[3].split(",")])).astype(np.float32)
name = s.get_inputs()[0].name
for _ in range(5): s.run(None, {name: x})
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

    work_dir = work_dir or Path(model).parent.parent.parent
    engine, _ = build_engine(model, "ort", BuildOptions(), work_dir)
    shape = engine.sidecar.image_shape
    batch = np.random.default_rng(0).standard_normal((1, *shape)).astype(np.float32)
    session = create_session(engine.path, ["CPUExecutionProvider"], _session_options(None, False))
    name = session.get_inputs()[0].name
    ratios, tool_means = [], []
    with get_backend("ort").runner(engine) as runner:
        for _ in range(5):
            runner.infer(batch)
            session.run(None, {name: batch})
        for _ in range(ROUNDS):
            samples = []
            for _ in range(CALLS):
                t0 = time.perf_counter_ns()
                runner.infer(batch)
                samples.append(time.perf_counter_ns() - t0)
            start = time.perf_counter_ns()
            for _ in range(CALLS):
                session.run(None, {name: batch})
            bare = (time.perf_counter_ns() - start) / CALLS
            tool_means.append(float(np.mean(samples)))
            ratios.append(float(np.mean(samples)) / bare)
    overhead = float(np.median(ratios)) - 1
    shape_text = ",".join(str(v) for v in shape)
    with_calls = min(_process_seconds(engine.path, PROCESS_CALLS, shape_text) for _ in range(3))
    without = min(_process_seconds(engine.path, 0, shape_text) for _ in range(3))
    per_call_ms = (with_calls - without) / PROCESS_CALLS * 1e3
    tool_ms = float(np.median(tool_means)) / 1e6
    difference = tool_ms / per_call_ms - 1
    return {
        "harness_overhead": {
            "value": overhead,
            "target": 0.02,
            "met": overhead <= 0.02,
            "rounds": ROUNDS,
            "calls": CALLS,
            "text": f"harness overhead vs a bare session.run loop, ort fp32 batch 1: {100 * overhead:+.2f}% "
            f"(target <= 2%, median of {ROUNDS} interleaved rounds of {CALLS} calls)",
        },
        "independent_timing": {
            "tool_ms": tool_ms,
            "process_ms": per_call_ms,
            "difference": difference,
            "met": abs(difference) <= 0.05,
            "text": f"tool mean {tool_ms:.3f} ms vs independent whole-process timing {per_call_ms:.3f} ms per call "
            f"({100 * difference:+.1f}%, target within 5%)",
        },
    }
