"""The NNCF route on the trained test network: real nncf.quantize, real sessions."""

from __future__ import annotations

import shutil

import numpy as np
import onnx
import pytest

from alexnet_deploy.calib.fidelity import logits_on
from alexnet_deploy.engines.build import build_engine, resolve_artifact
from alexnet_deploy.engines.options import BuildOptions
from alexnet_deploy.engines.registry import get_backend
from alexnet_deploy.errors import AlexnetDeployError, UsageError
from alexnet_deploy.onnx_model import read_artifact

pytestmark = pytest.mark.nncf  # real nncf.quantize (the last test fakes its absence)


@pytest.fixture(scope="module")
def nncf_model(digits, tmp_path_factory):
    from alexnet_deploy.models.variants import register_variant
    from tests.digits import DIGITS

    register_variant(DIGITS)
    model = tmp_path_factory.mktemp("nncf") / "digits-tiny.onnx"
    shutil.copy(digits["onnx"], model)
    return model


def _calibrate(cli, model, digits, *extra):
    return cli(
        "calibrate",
        model,
        "--data",
        digits["train_dir"],
        "--eval-data",
        digits["heldout_dir"],
        "--calib-size",
        "128",
        "--quantizer",
        "nncf",
        *extra,
    )


def test_nncf_route_writes_a_faithful_cpu_artifact(cli, digits, nncf_model):
    result = _calibrate(cli, nncf_model, digits)
    assert result.exit_code == 0, result.stderr
    out = nncf_model.with_name("digits-tiny.int8-nncf.onnx")
    assert f"wrote nncf: {out}" in result.stdout
    assert "Statistics collection" not in result.stdout  # NNCF's progress goes to stderr
    info = read_artifact(out)
    assert info.precision == "int8"
    assert info.metadata["int8_quantizer"] == "nncf" and info.metadata["int8_target"] == "cpu"
    ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    # fidelity held to the same budget: the trained network keeps its top-1 within a point
    drop = float(result.stdout.split("top-1 drop ")[1].split(" points")[0])
    assert drop <= 1.0
    # an existing artifact is kept unless --force
    before = out.read_bytes()
    again = _calibrate(cli, nncf_model, digits)
    assert again.exit_code == 1 and "already exists" in again.stderr
    assert out.read_bytes() == before


def test_same_inputs_give_the_same_nncf_artifact(cli, digits, nncf_model):
    out = nncf_model.with_name("digits-tiny.int8-nncf.onnx")
    if not out.is_file():
        assert _calibrate(cli, nncf_model, digits).exit_code == 0
    first = out.read_bytes()
    assert _calibrate(cli, nncf_model, digits, "--force").exit_code == 0
    assert out.read_bytes() == first


@pytest.mark.parametrize("backend", ["ort", pytest.param("openvino", marks=pytest.mark.openvino)])
def test_engines_build_and_run_the_nncf_route(cli, digits, nncf_model, tmp_path, backend):
    out = nncf_model.with_name("digits-tiny.int8-nncf.onnx")
    if not out.is_file():
        assert _calibrate(cli, nncf_model, digits).exit_code == 0
    options = BuildOptions(precision="int8", quantizer="nncf")
    engine, _ = build_engine(nncf_model, backend, options, tmp_path)
    assert engine.sidecar.artifact.endswith("int8-nncf.onnx")
    x = (
        np.random.default_rng(0)
        .standard_normal((4, *engine.sidecar.image_shape))
        .astype(np.float32)
    )
    with get_backend(backend).runner(engine) as runner:
        logits = runner.infer(x)
    # the same file through the same runtime used directly: the engine adds no error of its own
    # (against another runtime, INT8 kernels differ by CPU class: docs/calibration.md)
    reference = logits_on(backend, out, read_artifact(out).input.name, x, 4)
    assert logits.shape == (4, 10)
    assert np.abs(logits - reference).max() <= 0.05 * np.abs(reference).max()


def test_route_mismatch_and_missing_artifact_are_clear(cli, digits, nncf_model, tmp_path):
    out = nncf_model.with_name("digits-tiny.int8-nncf.onnx")
    if not out.is_file():
        assert _calibrate(cli, nncf_model, digits).exit_code == 0
    with pytest.raises(UsageError, match="quantized by nncf, not qdq"):
        resolve_artifact(out, "int8", "ort", "qdq")
    lonely = tmp_path / "digits-tiny.onnx"
    shutil.copy(nncf_model, lonely)
    with pytest.raises(AlexnetDeployError, match="--quantizer nncf"):
        resolve_artifact(lonely, "int8", "openvino", "nncf")
    with pytest.raises(UsageError, match="only applies to --precision int8"):
        BuildOptions(precision="fp16", quantizer="nncf")
    wrong = cli("calibrate", nncf_model, "--quantizer", "nncf", "--target", "tensorrt")
    assert wrong.exit_code == 2 and "CPU form only" in wrong.stderr
    before = nncf_model.read_bytes()
    onto = cli("calibrate", nncf_model, "--quantizer", "nncf", "-o", nncf_model, "--force")
    assert onto.exit_code == 2 and "is the input model" in onto.stderr
    assert nncf_model.read_bytes() == before


def test_missing_nncf_names_the_extra_and_writes_nothing(cli, nncf_model, monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "nncf", None)  # what Python does when it is not installed
    out = tmp_path / "never.onnx"
    result = cli("calibrate", nncf_model, "--quantizer", "nncf", "-o", out)
    assert result.exit_code == 1
    assert "nncf is not installed" in result.stderr and "alexnet-deploy[nncf]" in result.stderr
    assert not out.exists()
