"""Paired mode: the baseline's engine and the current one measured interleaved in one process,
on real engines of the trained test network and of a genuinely slower copy of it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from alexnet_deploy.bench.config import BenchConfig, Matrix, MeasureRules
from alexnet_deploy.workflow import ModelRequest, bench_model

RULES = MeasureRules(warmup_iterations=2, min_iterations=30, min_seconds=0.1, max_seconds=0.3)


def _slower_copy(model, out):
    """The same network plus real work whose result is multiplied by zero and added to the
    logits (the runtime cannot skip it): a slower engine with identical outputs."""
    proto = onnx.load(str(model))
    graph = proto.graph
    output = graph.output[0].name
    producer = next(n for n in graph.node if output in n.output)
    producer.output[list(producer.output).index(output)] = "logits_raw"
    width = int(np.prod([d.dim_value for d in graph.input[0].type.tensor_type.shape.dim[1:]]))
    weight = np.random.default_rng(0).standard_normal((width, 4096)).astype(np.float32)
    graph.initializer.extend(
        [
            numpy_helper.from_array(weight, "extra_w"),
            numpy_helper.from_array(np.zeros((), np.float32), "extra_zero"),
        ]
    )
    graph.node.extend(
        [
            helper.make_node("Flatten", [graph.input[0].name], ["extra_flat"]),
            helper.make_node("MatMul", ["extra_flat", "extra_w"], ["extra_mm"]),
            helper.make_node("Relu", ["extra_mm"], ["extra_relu"]),
            helper.make_node("ReduceSum", ["extra_relu"], ["extra_sum"], keepdims=0),
            helper.make_node("Mul", ["extra_sum", "extra_zero"], ["extra_nothing"]),
            helper.make_node("Add", ["logits_raw", "extra_nothing"], [output]),
        ]
    )
    assert graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    onnx.checker.check_model(proto)
    onnx.save(proto, str(out))
    return out


@pytest.fixture(scope="module")
def baseline(digits, tmp_path_factory):
    root = tmp_path_factory.mktemp("paired")
    model = root / "m.onnx"
    shutil.copy(digits["onnx"], model)
    config = BenchConfig(Matrix(backends=("ort",), precisions=("fp32",), batches=(4,)), RULES)
    bench_model(ModelRequest(model=model), config, root / "w", root / "base", roofline=False)
    return {"root": root, "model": model, "report": root / "base"}


def test_the_same_engine_passes(cli, baseline, tmp_path):
    result = cli(
        "gate", baseline["report"], "--paired", "--model", baseline["model"],
        "--json", tmp_path / "g.json", "--work-dir", baseline["root"] / "w",
    )  # fmt: skip
    assert result.exit_code == 0, result.stdout + result.stderr
    data = json.loads((tmp_path / "g.json").read_text())
    assert data["mode"] == "paired" and "gate PASS (paired)" in result.stdout
    [verdict] = data["verdicts"]
    assert verdict["metric"] == "p50 (paired)" and abs(verdict["change"]) < 0.1


def test_a_slower_engine_fails(cli, baseline, tmp_path):
    slow = _slower_copy(baseline["model"], tmp_path / "slow.onnx")
    result = cli(
        "gate", baseline["report"], "--paired", "--model", slow,
        "--json", tmp_path / "g.json", "--work-dir", baseline["root"] / "w",
    )  # fmt: skip
    assert result.exit_code == 1, result.stdout + result.stderr
    [verdict] = json.loads((tmp_path / "g.json").read_text())["verdicts"]
    assert verdict["verdict"] == "regressed" and verdict["change"] > 0.1 and verdict["ci_low"] > 1


def test_a_baseline_without_its_model(cli, baseline, tmp_path):
    moved = tmp_path / "moved"
    shutil.copytree(baseline["report"], moved)
    summary = moved / "bench-summary.json"
    data = json.loads(summary.read_text())
    data["model"]["path"] = str(tmp_path / "gone.onnx")
    summary.write_text(json.dumps(data))
    required = cli(
        "gate", moved, "--paired", "--require-paired", "--model", baseline["model"],
        "--work-dir", baseline["root"] / "w",
    )  # fmt: skip
    assert required.exit_code == 2 and "paired mode needs the baseline's model" in required.stderr
    fallback = cli(
        "gate", moved, baseline["report"], "--paired", "--threshold", "0.5",
        "--work-dir", baseline["root"] / "w",
    )  # fmt: skip
    assert "comparing the reports unpaired instead" in fallback.stderr
    assert "(unpaired)" in fallback.stdout and fallback.exit_code == 0, fallback.stdout
