"""TensorRT: everything on the CPU side of the GPU boundary, tested without TensorRT; the GPU
tests at the end skip with a reason where TensorRT or a GPU is missing."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import onnx
import pytest

from alexnet_deploy.calib.tensorrt_check import TensorRTCompatibilityError, check_tensorrt_qdq
from alexnet_deploy.engines.options import BuildOptions
from alexnet_deploy.engines.sidecar import Sidecar
from alexnet_deploy.engines.tensorrt import check_plan_compatible, default_profile
from alexnet_deploy.engines.tensorrt_api import (
    ParserError,
    Profile,
    api_for,
    api_from_module,
)
from alexnet_deploy.errors import AlexnetDeployError, UsageError
from alexnet_deploy.fileio import sha256_file

H200 = {"name": "NVIDIA H200", "compute_capability": "9.0", "driver": "580.65"}


@pytest.mark.parametrize(
    ("version", "flags", "calibrators", "explicit"),
    [
        ("10.0.1", True, True, True),
        ("10.12.0.36", True, True, True),
        ("10.16.0.72", True, True, True),
        ("11.4.0", False, False, False),
    ],
)
def test_api_per_major_version(version, flags, calibrators, explicit):
    api = api_for(version)
    assert api.strongly_typed
    assert api.precision_flags is flags and api.calibrators is calibrators
    assert api.explicit_batch_flag is explicit and api.legacy_int8 is (flags and calibrators)


def test_unsupported_versions_are_refused():
    with pytest.raises(AlexnetDeployError, match="TensorRT 8.6.1 is not supported"):
        api_for("8.6.1")
    with pytest.raises(AlexnetDeployError, match="unreadable TensorRT version"):
        api_for("ten")


def _fake_trt(version: str, *, int8_flag: bool):
    """The attribute surface api_from_module inspects (hasattr), as plain objects."""
    builder_flag = SimpleNamespace(TF32=1, **({"FP16": 2, "INT8": 3} if int8_flag else {}))
    return SimpleNamespace(
        __version__=version,
        NetworkDefinitionCreationFlag=SimpleNamespace(STRONGLY_TYPED=5),
        BuilderFlag=builder_flag,
        **({"IInt8EntropyCalibrator2": object} if int8_flag else {}),
    )


def test_api_is_read_with_hasattr_not_assumed():
    # 11.4: no FP16/INT8 builder flags; 10.16: still there
    assert not api_from_module(_fake_trt("11.4.0", int8_flag=False)).precision_flags
    assert api_from_module(_fake_trt("10.16.0", int8_flag=True)).legacy_int8
    # a 10.x build without the deprecated members is read as it is
    assert not api_from_module(_fake_trt("10.16.0", int8_flag=False)).legacy_int8


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1:8", "is not MIN:OPT:MAX"),
        ("a:b:c", "is not MIN:OPT:MAX"),
        ("0:1:2", "min must be at least 1"),
        ("8:4:16", "min 8 is greater than opt 4"),
        ("1:32:16", "opt 32 is greater than max 16"),
    ],
)
def test_bad_profiles(text, message):
    with pytest.raises(UsageError, match=message):
        Profile.parse(text)


def test_profile_shapes_and_default():
    profile = Profile.parse("1:8:64")
    assert profile.shapes((3, 224, 224)) == ((1, 3, 224, 224), (8, 3, 224, 224), (64, 3, 224, 224))
    assert str(default_profile(BuildOptions(max_batch=32))) == "1:4:32"
    assert str(default_profile(BuildOptions(batch_profile="2:4:8"))) == "2:4:8"


def test_parser_error_format():
    # parser_errors() on the real bindings' ErrorCode values: tests/engines/test_tensorrt_bindings.py
    assert ParserError("X", "bad", 3).format() == "node 3: bad [X]"
    assert (
        ParserError("Y", "no outputs", -1, "n", "Op").format() == "graph 'n' (Op): no outputs [Y]"
    )


def _plan_and_sidecar(tmp_path, gpu=H200, version="10.16.0.72"):
    plan = tmp_path / "model.plan"
    plan.write_bytes(b"serialized engine bytes")
    side = Sidecar(
        backend="tensorrt",
        runtime="tensorrt",
        runtime_version=version,
        precision="int8",
        artifact="m.int8-tensorrt.onnx",
        artifact_sha256="0" * 64,
        engine_file=plan.name,
        engine_sha256=sha256_file(plan),
        input_name="input",
        image_shape=[3, 224, 224],
        num_classes=1000,
        options=BuildOptions(precision="int8").as_dict(),
        details={"gpu": gpu, "profile": "1:8:64"},
    )
    side.write(tmp_path / "engine.json")
    return plan, Sidecar.read(tmp_path / "engine.json")


def test_sidecar_round_trip_and_matching_plan_is_accepted(tmp_path):
    plan, side = _plan_and_sidecar(tmp_path)
    assert (
        json.loads((tmp_path / "engine.json").read_text())["details"]["gpu"]["name"]
        == "NVIDIA H200"
    )
    check_plan_compatible(side, H200, "10.16.0.72", plan)


@pytest.mark.parametrize(
    ("gpu", "version", "message"),
    [
        (
            {**H200, "name": "NVIDIA A100"},
            "10.16.0.72",
            "built for GPU 'NVIDIA H200', this machine has 'NVIDIA A100'",
        ),
        (
            {**H200, "compute_capability": "8.0"},
            "10.16.0.72",
            "compute capability '9.0', this machine has '8.0'",
        ),
        (H200, "11.4.0", "built with TensorRT 10.16.0.72, this machine has 11.4.0"),
    ],
)
def test_foreign_plans_are_refused(tmp_path, gpu, version, message):
    plan, side = _plan_and_sidecar(tmp_path)
    with pytest.raises(AlexnetDeployError, match=message) as err:
        check_plan_compatible(side, gpu, version, plan)
    assert "rebuild" in err.value.hint


def test_corrupt_or_truncated_plan_is_refused(tmp_path):
    plan, side = _plan_and_sidecar(tmp_path)
    plan.write_bytes(b"serialized")
    with pytest.raises(AlexnetDeployError, match="corrupt or truncated"):
        check_plan_compatible(side, H200, "10.16.0.72", plan)


def test_plan_without_sidecar_is_refused(tmp_path):
    from alexnet_deploy.engines.build import load_engine

    (tmp_path / "model.plan").write_bytes(b"x")
    with pytest.raises(AlexnetDeployError, match="sidecar .* not found"):
        load_engine(tmp_path)


def test_uint8_or_nonzero_int8_artifact_is_caught_before_the_build(digits_artifacts):
    """The cpu INT8 form (UINT8 activations, INT32 biases) is what a user might hand to
    TensorRT by mistake: the check names the node before any builder runs."""
    cpu_form = onnx.load(str(digits_artifacts["model"].with_name("digits-tiny.int8-cpu.onnx")))
    with pytest.raises(TensorRTCompatibilityError, match=r"node '.+'"):
        check_tensorrt_qdq(cpu_form)


def test_trt_options_are_validated():
    with pytest.raises(UsageError, match="--legacy-int8 only applies to --precision int8"):
        BuildOptions(legacy_int8=True)
    with pytest.raises(UsageError, match="--workspace-mb must be at least 1"):
        BuildOptions(workspace_mb=0)


@pytest.mark.tensorrt
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_tensorrt_engine_parity_on_gpu(digits_artifacts, precision, tmp_path):
    """On a machine with TensorRT and a GPU: build from the artifact, run, compare with FP32."""
    from alexnet_deploy.calib.pipeline import calibrate
    from alexnet_deploy.calib.stage import DataRequest
    from alexnet_deploy.engines.build import build_engine
    from alexnet_deploy.engines.registry import get_backend

    if precision == "int8":
        calibrate(
            digits_artifacts["model"],
            DataRequest(
                data=str(digits_artifacts["train_dir"]),
                calib_size=64,
                eval_data=str(digits_artifacts["heldout_dir"]),
                eval_size=32,
            ),
            targets=("tensorrt",),
            force=True,
        )
    engine, _ = build_engine(
        digits_artifacts["model"], "tensorrt", BuildOptions(precision=precision), tmp_path
    )
    images = digits_artifacts["heldout_images"][:32]
    with get_backend("tensorrt").runner(engine) as runner:
        logits = runner.infer(images)
    import torch

    with torch.no_grad():
        reference = digits_artifacts["torch_model"](torch.from_numpy(images)).numpy()
    assert (logits.argmax(1) == reference.argmax(1)).mean() >= 0.97
    assert np.isfinite(logits).all()


def test_tensorrt_provider_is_told_the_precision_and_the_batch_profile():
    from alexnet_deploy.engines.ort import trt_ep_options

    int8 = trt_ep_options("int8", "input", (3, 224, 224), (1, 4, 32))
    assert int8["trt_int8_enable"] is True and int8["trt_fp16_enable"] is True
    assert int8["trt_profile_min_shapes"] == "input:1x3x224x224"
    assert int8["trt_profile_opt_shapes"] == "input:4x3x224x224"
    assert int8["trt_profile_max_shapes"] == "input:32x3x224x224"
    fp16 = trt_ep_options("fp16", "input", (3, 224, 224), (1, 4, 32))
    assert fp16["trt_fp16_enable"] is True and "trt_int8_enable" not in fp16
    fp32 = trt_ep_options("fp32", "input", (3, 224, 224), (1, 4, 32))
    assert "trt_fp16_enable" not in fp32 and "trt_int8_enable" not in fp32


def test_both_tensorrt_routes_take_the_symmetric_int8_form():
    from alexnet_deploy.engines.build import int8_form

    assert int8_form("tensorrt") == int8_form("ort-trt") == "tensorrt"
    assert int8_form("ort") == int8_form("ort-cuda") == int8_form("openvino") == "cpu"


def test_the_timing_cache_is_keyed_by_gpu_capability_and_version():
    from alexnet_deploy.engines.tensorrt import timing_cache_name

    h200 = {"name": "NVIDIA H200", "compute_capability": "9.0"}
    a100 = {"name": "NVIDIA A100-SXM4-80GB", "compute_capability": "8.0"}
    names = {
        timing_cache_name(h200, "10.13.0.35"),
        timing_cache_name(h200, "11.4.0.106"),
        timing_cache_name(a100, "10.13.0.35"),
    }
    assert len(names) == 3
    assert (
        timing_cache_name(h200, "10.13.0.35")
        == "tensorrt-timing-nvidia-h200-sm90-trt10.13.0.35.cache"
    )


def _portable(tmp_path, **options):
    plan, side = _plan_and_sidecar(tmp_path)
    side.options = BuildOptions(precision="int8", **options).as_dict()
    return plan, side


A100 = {"name": "NVIDIA A100", "compute_capability": "8.0", "driver": "570.86.10"}
T4 = {"name": "Tesla T4", "compute_capability": "7.5", "driver": "570.86.10"}
H100 = {"name": "NVIDIA H100", "compute_capability": "9.0", "driver": "570.86.10"}


@pytest.mark.parametrize(
    ("options", "gpu", "version", "refused"),
    [
        ({"hardware_compat": "ampere+"}, A100, "10.16.0.72", None),
        ({"hardware_compat": "ampere+"}, T4, "10.16.0.72", "Ampere and later"),
        ({"hardware_compat": "same-cc"}, H100, "10.16.0.72", None),
        ({"hardware_compat": "same-cc"}, A100, "10.16.0.72", "compute capability '9.0'"),
        ({"version_compatible": True}, H200, "10.17.1.3", None),
        ({"version_compatible": True}, H200, "10.14.0.1", "runs on TensorRT 10.x from"),
        ({"version_compatible": True}, H200, "11.4.0.106", "runs on TensorRT 10.x from"),
        ({"hardware_compat": "ampere+", "version_compatible": True}, A100, "10.17.1.3", None),
        ({}, H200, "10.17.1.3", "unless built with --version-compatible"),
    ],
)
def test_portable_plans_run_where_their_options_allow(tmp_path, options, gpu, version, refused):
    plan, side = _portable(tmp_path, **options)
    if refused is None:
        check_plan_compatible(side, gpu, version, plan)
        return
    with pytest.raises(AlexnetDeployError, match=refused):
        check_plan_compatible(side, gpu, version, plan)


def test_portability_options_keep_old_engine_keys_and_are_tensorrt_only(tmp_path):
    """Engines keyed before the options existed keep their keys (defaults left out); the key
    changes when a plan is built portable; other backends refuse the options."""
    import hashlib

    from alexnet_deploy.engines.build import build_engine
    from alexnet_deploy.engines.options import LATE_FIELDS
    from alexnet_deploy.errors import UsageError

    plain = BuildOptions(precision="int8")
    old = {k: v for k, v in plain.as_dict().items() if k not in LATE_FIELDS}
    assert plain.key() == hashlib.sha256(json.dumps(old, sort_keys=True).encode()).hexdigest()[:10]
    assert BuildOptions(precision="int8", version_compatible=True).key() != plain.key()
    with pytest.raises(UsageError, match="unknown --hardware-compat 'volta'"):
        BuildOptions(hardware_compat="volta")
    model = tmp_path / "m.onnx"
    model.write_bytes(b"")
    with pytest.raises(UsageError, match="TensorRT plan options"):
        build_engine(model, "ort", BuildOptions(hardware_compat="ampere+"), tmp_path / "work")
