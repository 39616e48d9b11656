"""Shared fixtures: real exports of both variants (once per session) and a CLI driver."""

from __future__ import annotations

import importlib.util
import re
import shutil
from dataclasses import dataclass

import pytest

from alexnet_deploy.cli import run


def _has_cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def pytest_collection_modifyitems(config, items):
    """Skip on capability at collection time, with the reason in the report."""
    reasons = {
        "cuda": None if _has_cuda() else "no CUDA device on this machine",
        "tensorrt": None
        if importlib.util.find_spec("tensorrt") and _has_cuda()
        else "TensorRT and a CUDA device are both needed",
        "openvino": None
        if importlib.util.find_spec("openvino")
        else "openvino is not installed (pip install 'alexnet-deploy[openvino]')",
        "nncf": None
        if importlib.util.find_spec("nncf")
        else "nncf is not installed (pip install 'alexnet-deploy[nncf]')",
    }
    for item in items:
        for marker, reason in reasons.items():
            if reason and marker in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


PROGRESS_LINE = re.compile(r"^\[\d+:\d\d\] ")


def without_progress(text: str) -> str:
    """stderr without the progress lines a command prints off a terminal ("[0:03] exporting")."""
    return "\n".join(line for line in text.splitlines() if not PROGRESS_LINE.match(line))


@pytest.fixture
def cli(capsys):
    """Run the real CLI entry point in-process; return exit code and captured output."""

    def invoke(*args: str) -> CliResult:
        capsys.readouterr()
        code = run([str(a) for a in args])
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return invoke


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    """Export each variant once (untrained, seed 0) through the CLI code path's library call."""
    from alexnet_deploy.exporter.pipeline import export_onnx
    from alexnet_deploy.models.variants import VARIANTS

    root = tmp_path_factory.mktemp("exports")
    cache = {}

    def get(name: str):
        if name not in cache:
            cache[name] = export_onnx(VARIANTS[name], root / f"{name}.onnx", seed=0)
        return cache[name]

    yield get
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def digits(tmp_path_factory):
    """The trained test network (tests/digits.py): PNG folders, checkpoint, FP32 ONNX export."""
    from tests.digits import build

    root = tmp_path_factory.mktemp("digits")
    yield build(root)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def digits_model(digits, tmp_path_factory):
    """A private copy of the trained network's FP32 model (tests write artifacts and engines
    beside it), with its variant registered so the torch backend can rebuild it."""
    from alexnet_deploy.models.variants import register_variant
    from tests.digits import DIGITS

    register_variant(DIGITS)
    path = tmp_path_factory.mktemp("digits-model") / "digits-tiny.onnx"
    shutil.copy(digits["onnx"], path)
    return path


@pytest.fixture(scope="session")
def digits_artifacts(digits, tmp_path_factory):
    """The trained network's FP32 model with its FP16 and INT8 (cpu form) artifacts beside it,
    made by the real commands; the torch backend learns the network's variant."""
    from alexnet_deploy.calib.fp16 import convert_fp16
    from alexnet_deploy.calib.pipeline import calibrate
    from alexnet_deploy.calib.stage import DataRequest
    from alexnet_deploy.models.variants import register_variant
    from tests.digits import DIGITS

    register_variant(DIGITS)
    root = tmp_path_factory.mktemp("engines")
    model = root / "digits-tiny.onnx"
    shutil.copy(digits["onnx"], model)
    convert_fp16(model, DataRequest(data=str(digits["heldout_dir"]), eval_size=64))
    calibrate(
        model,
        DataRequest(
            data=str(digits["train_dir"]),
            calib_size=128,
            eval_data=str(digits["heldout_dir"]),
            eval_size=64,
        ),
        targets=("cpu",),
    )
    return {**digits, "model": model, "torch_model": digits["model"], "work": root / "work"}


@pytest.fixture(scope="module")
def report(digits, tmp_path_factory):
    """One small real bench report of the trained test network (ROOT/report), with its model
    (ROOT/m.onnx) and work directory (ROOT/work)."""
    from alexnet_deploy.bench.config import BenchConfig, Matrix, MeasureRules
    from alexnet_deploy.workflow import ModelRequest, bench_model

    root = tmp_path_factory.mktemp("faults")
    model = root / "m.onnx"
    shutil.copy(digits["onnx"], model)
    rules = MeasureRules(warmup_iterations=2, min_iterations=30, min_seconds=0.2, max_seconds=0.5)
    config = BenchConfig(Matrix(backends=("ort",), precisions=("fp32",), batches=(2,)), rules)
    request = ModelRequest(model=model, data=str(digits["heldout_dir"]))
    bench_model(request, config, root / "work", root / "report", roofline=False, argv=["bench"])
    return root
