"""Paired mode: the baseline's engine and the current one measured interleaved in one process,
on real engines of the trained test network and of a genuinely slower copy of it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnxruntime as ort
import pytest

from alexnet_deploy.bench.config import BenchConfig, Matrix, MeasureRules
from alexnet_deploy.gate.noise import slower_copy
from alexnet_deploy.workflow import ModelRequest, bench_model

RULES = MeasureRules(warmup_iterations=2, min_iterations=30, min_seconds=0.1, max_seconds=0.3)


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
    slow = slower_copy(baseline["model"], tmp_path / "slow.onnx", width=4096)
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
    assert "(history)" in fallback.stdout and fallback.exit_code == 0, fallback.stdout


def test_the_slower_copy_has_the_same_outputs(baseline, tmp_path):
    slow = slower_copy(baseline["model"], tmp_path / "slow.onnx", width=64)
    batch = np.random.default_rng(0).standard_normal((2, 3, 32, 32), dtype=np.float32)
    outs = [
        ort.InferenceSession(str(m), providers=["CPUExecutionProvider"]).run(None, {"input": batch})
        for m in (baseline["model"], slow)
    ]
    np.testing.assert_allclose(outs[0][0], outs[1][0], rtol=1e-6, atol=1e-6)


def test_model_without_a_current_report_gates_paired_by_default(cli, baseline, tmp_path):
    result = cli(
        "gate", baseline["report"], "--model", baseline["model"],
        "--work-dir", baseline["root"] / "w",
    )  # fmt: skip
    assert result.exit_code == 0 and "gate PASS (paired)" in result.stdout, result.stderr


def test_the_baseline_model_is_found_by_content_when_moved(cli, baseline, tmp_path):
    """The report records the model's sha256: moved into the work directory's exports, it is
    found there; an other file at the recorded path is not taken for it."""
    from alexnet_deploy.artifacts import WorkDir
    from alexnet_deploy.gate.paired_gate import baseline_model

    report = baseline["report"] / "bench-summary.json"
    work = tmp_path / "w"
    moved = WorkDir(work).export("digits-tiny", "k")
    moved.parent.mkdir(parents=True)
    shutil.copy(baseline["model"], moved)
    data = json.loads(report.read_text())
    data["model"]["path"] = str(tmp_path / "gone.onnx")
    relocated = tmp_path / "bench-summary.json"
    relocated.write_text(json.dumps(data))
    assert baseline_model(relocated, None, work) == moved
    (tmp_path / "gone.onnx").write_bytes(b"another model")
    assert baseline_model(relocated, None, work) == moved
    moved.unlink()
    assert baseline_model(relocated, None, work) is None
