"""The artifact set of a model: one naming rule, and derived files checked to belong to the
FP32 model they are asked about (a re-exported model never runs with its predecessor's INT8)."""

from __future__ import annotations

import shutil

import onnx
import pytest
from onnx import numpy_helper

from alexnet_deploy.artifacts import ArtifactSet, stem_of
from alexnet_deploy.calib.fp16 import convert_fp16
from alexnet_deploy.calib.pipeline import calibrate
from alexnet_deploy.calib.stage import DataRequest
from alexnet_deploy.errors import AlexnetDeployError
from alexnet_deploy.fileio import sha256_file


def test_names(tmp_path):
    s = ArtifactSet(tmp_path / "m.onnx")
    assert s.fp16.name == "m.fp16.onnx"
    assert [s.int8(f).name for f in ("cpu", "tensorrt", "nncf")] == [
        "m.int8-cpu.onnx",
        "m.int8-tensorrt.onnx",
        "m.int8-nncf.onnx",
    ]
    assert s.int8_report(tmp_path / "x") == tmp_path / "x" / "m.int8.report.json"
    assert s.trt_cache().name == "m.int8.trt-calibration.cache"
    assert s.for_precision("fp32") == s.model and stem_of(s.int8("cpu")) == "m"
    with pytest.raises(ValueError, match="unknown INT8 form"):
        s.int8("fp8")


def _reexport(model):
    """The same graph with other weights: what 'export --seed 7 --force' leaves at the path."""
    proto = onnx.load(str(model))
    init = next(i for i in proto.graph.initializer if len(i.dims) == 4)
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 1.5, init.name))
    onnx.save(proto, str(model))


@pytest.fixture
def stale(digits, tmp_path):
    """A model whose FP16 and INT8 files were made from its previous version."""
    model = tmp_path / "m.onnx"
    shutil.copy(digits["onnx"], model)
    request = DataRequest(
        data=str(digits["train_dir"]), calib_size=32, eval_data=str(digits["heldout_dir"])
    )
    calibrate(model, request, targets=("cpu",), trt_cache=False)
    convert_fp16(model, DataRequest(data=str(digits["heldout_dir"]), eval_size=32))
    _reexport(model)
    return model


def test_build_refuses_artifacts_of_another_model(stale, cli, tmp_path):
    work = tmp_path / "work"
    for precision in ("int8", "fp16"):
        before = sha256_file(ArtifactSet(stale).for_precision(precision))
        result = cli(
            "build", stale, "--backend", "ort", "--precision", precision, "--work-dir", work
        )
        assert result.exit_code == 1, result.stdout + result.stderr
        assert "was made from another model" in result.stderr and "Traceback" not in result.stderr
        assert "--force'" in result.stderr  # the command that remakes it
        assert sha256_file(ArtifactSet(stale).for_precision(precision)) == before
    assert not (work / "engines").exists() or not any((work / "engines").iterdir())


def test_package_refuses_artifacts_of_another_model(stale, cli, tmp_path):
    out = tmp_path / "repo"
    result = cli("package", "--triton", out, "--model", stale, "--no-openvino")
    assert result.exit_code == 1 and "was made from another model" in result.stderr
    assert not out.exists() and not list(tmp_path.glob(".repo.*"))


def test_remade_artifacts_are_accepted(stale, digits):
    assert not ArtifactSet(stale).belongs(ArtifactSet(stale).int8("cpu"))
    request = DataRequest(
        data=str(digits["train_dir"]), calib_size=32, eval_data=str(digits["heldout_dir"])
    )
    calibrate(stale, request, targets=("cpu",), trt_cache=False, force=True)
    assert ArtifactSet(stale).derived("int8") == ArtifactSet(stale).int8("cpu")
    with pytest.raises(AlexnetDeployError, match="was made from another model"):
        ArtifactSet(stale).derived("fp16")


def test_a_rewritten_file_is_hashed_again(tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(b"a" * 100)
    first = sha256_file(path)
    path.write_bytes(b"b" * 100)  # same size and inode, maybe within one clock tick
    assert sha256_file(path) != first and len(first) == 64
