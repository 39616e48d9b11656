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

ROUNDS = 20
CALLS = 20
PROCESS_CALLS = 300
PROCESS_ROUNDS = 5

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

    work_dir = work_dir or Path(model).parent.parent.parent
    engine, _ = build_engine(model, "ort", BuildOptions(), work_dir)
    shape = engine.sidecar.image_shape
    batch = np.random.default_rng(0).standard_normal((1, *shape)).astype(np.float32)
    session = create_session(engine.path, ["CPUExecutionProvider"], _session_options(None, False))
    name = session.get_inputs()[0].name
    ratios = []
    with get_backend("ort").runner(engine) as runner:
        for _ in range(5):
            runner.infer(batch)
            session.run(None, {name: batch})
        for index in range(ROUNDS):
            # alternate which loop goes first, so a slow moment does not always hit the same one
            first_tool = index % 2 == 0
            for which in (True, False) if first_tool else (False, True):
                start = time.perf_counter_ns()
                if which:
                    for _ in range(CALLS):  # the tool's loop: a clock read around every call
                        t0 = time.perf_counter_ns()
                        runner.infer(batch)
                        time.perf_counter_ns() - t0
                    tool = (time.perf_counter_ns() - start) / CALLS
                else:
                    for _ in range(CALLS):
                        session.run(None, {name: batch})
                    bare = (time.perf_counter_ns() - start) / CALLS
            ratios.append(tool / bare)
    overhead = float(np.median(ratios)) - 1
    # independent timing, interleaved with the tool's own loop so both see the same machine:
    # per round, the tool times PROCESS_CALLS calls, then a fresh process runs them and a
    # fresh process runs none; the difference of the two wall times is the work.
    shape_text = ",".join(str(v) for v in shape)
    tool_ms_rounds, process_ms_rounds = [], []
    with get_backend("ort").runner(engine) as runner:
        for _ in range(PROCESS_ROUNDS):
            samples = []
            for _ in range(PROCESS_CALLS):
                t0 = time.perf_counter_ns()
                runner.infer(batch)
                samples.append(time.perf_counter_ns() - t0)
            tool_ms_rounds.append(float(np.mean(samples)) / 1e6)
            with_calls = _process_seconds(engine.path, PROCESS_CALLS, shape_text)
            without = _process_seconds(engine.path, 0, shape_text)
            process_ms_rounds.append((with_calls - without) / PROCESS_CALLS * 1e3)
    tool_ms, per_call_ms = float(np.median(tool_ms_rounds)), float(np.median(process_ms_rounds))
    difference = float(np.median(np.array(tool_ms_rounds) / np.array(process_ms_rounds))) - 1
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
            f"({100 * difference:+.1f}%, median of {PROCESS_ROUNDS} interleaved rounds, target within 5%)",
        },
    }
