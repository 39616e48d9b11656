"""A/A: one configuration against itself, interleaved, to measure this machine's noise and
derive a paired gate's threshold from it; and the injected-slowdown trials that show a real
regression is caught. Run by scripts/gate-evaluation (``gate --aa`` moved there: no CI step
or script used it) and the other gate evaluations.

Interleaving is what makes this work on a shared machine: back-to-back runs of a few seconds
differed by up to +-17% here (other tenants come and go), but blocks of A and B alternating
every ~0.1 s see the same machine, so the ratio of each pair of blocks cancels the drift. The
estimate is the median of the pair ratios; its interval is a bootstrap over pairs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from alexnet_deploy import constants as C
from alexnet_deploy.paired import TrialOutcome, interleaved_ratios, judge_ratios

# A derived threshold is this many times the largest A/A change, and never below the floor:
# a margin over the observed noise, not a tight fit to it.
SAFETY_FACTOR = 3.0
FLOOR = 0.02


def slowed(infer: Callable, fraction: float) -> Callable:
    """``infer`` made ``fraction`` slower: after each call, spin for that share of its time
    (busy-wait, not sleep, so the CPU stays occupied as real extra work would)."""

    def run(batch):
        start = time.perf_counter_ns()
        out = infer(batch)
        spent = time.perf_counter_ns() - start
        until = time.perf_counter_ns() + int(spent * fraction)
        while time.perf_counter_ns() < until:
            pass
        return out

    return run


def slower_copy(model: Path, out: Path, width: int) -> Path:
    """A copy of an ONNX model that is genuinely slower with identical outputs: a MatMul of the
    flattened input by a ``[input size, width]`` matrix, summed, multiplied by zero and added to
    the logits (a runtime cannot skip work whose result it adds). Its metadata is kept, so it
    stays a model of this tool; ``width`` sets the extra cost (measure it: it depends on the
    CPU's caches)."""
    import onnx
    from onnx import helper, numpy_helper

    proto = onnx.load(str(model))
    graph = proto.graph
    output = graph.output[0].name
    producer = next(n for n in graph.node if output in n.output)
    producer.output[list(producer.output).index(output)] = "slower_logits"
    dims = graph.input[0].type.tensor_type.shape.dim[1:]
    size = int(np.prod([d.dim_value for d in dims]))
    weight = np.random.default_rng(0).standard_normal((size, width)).astype(np.float32)
    graph.initializer.extend(
        [
            numpy_helper.from_array(weight, "slower_w"),
            numpy_helper.from_array(np.zeros((), np.float32), "slower_zero"),
        ]
    )
    graph.node.extend(
        [
            helper.make_node("Flatten", [graph.input[0].name], ["slower_flat"]),
            helper.make_node("MatMul", ["slower_flat", "slower_w"], ["slower_mm"]),
            helper.make_node("Relu", ["slower_mm"], ["slower_relu"]),
            helper.make_node("ReduceSum", ["slower_relu"], ["slower_sum"], keepdims=0),
            helper.make_node("Mul", ["slower_sum", "slower_zero"], ["slower_nothing"]),
            helper.make_node("Add", ["slower_logits", "slower_nothing"], [output]),
        ]
    )
    onnx.checker.check_model(proto)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, str(out))
    return Path(out)


def paired_trials(
    infer_a: Callable,
    infer_b: Callable,
    batch,
    trials: int,
    threshold: float,
    *,
    pairs: int = C.AA_PAIRS,
    calls: int = C.AA_BLOCK_CALLS,
    warmup: int = 10,
    seed: int = 0,
    on_trial: Callable[[int, TrialOutcome], None] = lambda i, o: None,
) -> list[TrialOutcome]:
    for _ in range(warmup):
        infer_a(batch)
        infer_b(batch)
    outcomes = []
    for i in range(trials):
        outcome = judge_ratios(
            interleaved_ratios(infer_a, infer_b, batch, pairs, calls), threshold, seed + i
        )
        outcomes.append(outcome)
        on_trial(i, outcome)
    return outcomes


def derive_threshold(aa: list[TrialOutcome]) -> float:
    return max(FLOOR, SAFETY_FACTOR * max(abs(o.change) for o in aa))
