"""calibrate and fp16 on the trained test network (tests/digits.py), through the real CLI."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, numpy_helper

from alexnet_deploy.calib.fidelity import compare_logits, ort_logits
from alexnet_deploy.calib.tensorrt_check import TensorRTCompatibilityError, check_tensorrt_qdq
from alexnet_deploy.calib.trt_cache import parse_cache
from alexnet_deploy.fileio import sha256_file
from alexnet_deploy.onnx_model import read_artifact
from tests.conftest import without_progress


def _zero_point_types(model) -> set[int]:
    inits = {i.name: i for i in model.graph.initializer}
    return {
        inits[n.input[2]].data_type
        for n in model.graph.node
        if n.op_type in ("QuantizeLinear", "DequantizeLinear") and len(n.input) > 2
    }


@pytest.fixture(scope="module")
def calibrated(digits, tmp_path_factory):
    """One INT8 calibration of the trained network (both targets), via the CLI."""
    from alexnet_deploy.cli import run

    out = tmp_path_factory.mktemp("int8")
    code = run(
        [
            "calibrate",
            str(digits["onnx"]),
            "--data",
            str(digits["train_dir"]),
            "--calib-size",
            "128",
            "--eval-data",
            str(digits["heldout_dir"]),
            "-o",
            str(out / "digits.int8-{target}.onnx"),
        ]
    )
    assert code == 0
    return out


def test_int8_keeps_top1_within_one_point(digits, calibrated):
    report = json.loads((calibrated / "digits.int8.report.json").read_text())
    rows = {r["target"]: r for r in report["rows"] if r["selected"]}
    assert set(rows) == {"tensorrt", "cpu"}
    for row in rows.values():
        assert row["top1_fp32"] > 0.9  # a trained network: the figures mean something
        assert row["top1_drop_points"] <= 1.0 and row["within_budget"]
        assert row["centered_cosine"] > 0.99
    assert report["budget_enforced"] is True
    # The judging figure, recomputed here from the written artifact on the held-out PNGs:
    # TensorRT's form as the file means it (emulated), the CPU form as this CPU runs it.
    images, labels = digits["heldout_images"], digits["heldout_labels"]
    reference = ort_logits(digits["onnx"], "input", images, 64)
    for target, emulated in (("tensorrt", True), ("cpu", False)):
        assert rows[target]["judged_on"] == ("emulated" if emulated else "ort")
        int8 = ort_logits(
            calibrated / f"digits.int8-{target}.onnx", "input", images, 64, emulated=emulated
        )
        fidelity = compare_logits(reference, int8, labels)
        assert fidelity.top1_drop_points() <= 1.0


def test_tensorrt_form_is_symmetric_int8_with_float_bias(calibrated):
    model = onnx.load(str(calibrated / "digits.int8-tensorrt.onnx"))
    assert check_tensorrt_qdq(model) > 0
    assert _zero_point_types(model) == {TensorProto.INT8}
    inits = {i.name: i for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            assert not numpy_helper.to_array(inits[node.input[2]]).any()
    # biases of Conv/Gemm stay float initializers
    for node in model.graph.node:
        if node.op_type in ("Conv", "Gemm") and len(node.input) > 2:
            assert inits[node.input[2]].data_type == TensorProto.FLOAT
    meta = read_artifact(calibrated / "digits.int8-tensorrt.onnx").metadata
    assert meta["precision"] == "int8" and meta["int8_target"] == "tensorrt"
    assert meta["calibration_data"] == "images" and meta["synthetic_calibration"] == "false"


def test_cpu_form_uses_uint8_activations_and_fails_the_tensorrt_check(calibrated):
    model = onnx.load(str(calibrated / "digits.int8-cpu.onnx"))
    assert TensorProto.UINT8 in _zero_point_types(model)
    with pytest.raises(TensorRTCompatibilityError, match=r"node .* (uses UINT8|dequantizes INT32)"):
        check_tensorrt_qdq(model)


def test_tensorrt_check_names_a_non_zero_zero_point(calibrated):
    model = onnx.load(str(calibrated / "digits.int8-tensorrt.onnx"))
    node = next(n for n in model.graph.node if n.op_type == "QuantizeLinear")
    zp = next(i for i in model.graph.initializer if i.name == node.input[2])
    zp.CopyFrom(numpy_helper.from_array(np.ones_like(numpy_helper.to_array(zp)), zp.name))
    with pytest.raises(
        TensorRTCompatibilityError, match=f"node '{node.name}' has a non-zero zero point"
    ):
        check_tensorrt_qdq(model)


def test_artifacts_load_and_manifest_lists_the_files(digits, calibrated):
    for target in ("tensorrt", "cpu"):
        session = ort.InferenceSession(
            str(calibrated / f"digits.int8-{target}.onnx"), providers=["CPUExecutionProvider"]
        )
        assert session.run(None, {"input": digits["heldout_images"][:3]})[0].shape == (3, 10)
    report = json.loads((calibrated / "digits.int8.report.json").read_text())
    calibration = report["data"]["calibration"]
    assert len(calibration) == 128 and len(report["data"]["held_out"]) == 512
    first = calibration[0]
    assert first["sha256"] == sha256_file(digits["train_dir"] / first["source"])
    assert first["label"] == int(first["source"].split("/")[0])
    assert report["artifacts"]["cpu"]["sha256"] == sha256_file(calibrated / "digits.int8-cpu.onnx")


def test_legacy_tensorrt_cache_round_trips(calibrated):
    text = (calibrated / "digits.int8-tensorrt.trt-calibration.cache").read_text()
    assert text.startswith("TRT-") and "EntropyCalibration2" in text.splitlines()[0]
    scales = parse_cache(text)
    assert "input" in scales and all(s > 0 for s in scales.values())


def test_legacy_cache_gets_the_running_tensorrt_header_and_knows_its_model(
    calibrated, digits, tmp_path
):
    """TensorRT skips a cache of an incompatible version (then fails for want of scales): the
    legacy build hands it the same scales under its own version's header. A cache calibrated on
    another model is refused."""
    from alexnet_deploy.calib.trt_cache import check_cache_source, header_for, with_header
    from alexnet_deploy.errors import AlexnetDeployError

    assert header_for("10.13.0.35") == "TRT-101300-EntropyCalibration2"
    assert header_for("11.4.0.106") == "TRT-110400-EntropyCalibration2"
    assert header_for("8.6.1") == "TRT-8601-EntropyCalibration2"
    cache = calibrated / "digits.int8-tensorrt.trt-calibration.cache"
    text = cache.read_text()
    moved = with_header(text, "10.13.0.35")
    assert moved.splitlines()[0] == "TRT-101300-EntropyCalibration2"
    assert parse_cache(moved) == parse_cache(text)
    check_cache_source(cache, sha256_file(digits["onnx"]))  # its own model: accepted
    with pytest.raises(AlexnetDeployError, match="calibrated on another model"):
        check_cache_source(cache, "0" * 64)
    lone = tmp_path / "lone.cache"
    lone.write_text(text)
    with pytest.raises(AlexnetDeployError, match="no readable record"):
        check_cache_source(lone, sha256_file(digits["onnx"]))


def test_second_run_reuses_ranges_and_gives_identical_artifacts(digits, calibrated, cli, tmp_path):
    args = [
        "calibrate",
        digits["onnx"],
        "--data",
        digits["train_dir"],
        "--calib-size",
        "128",
        "--eval-data",
        digits["heldout_dir"],
        "--target",
        "cpu",
    ]
    first = cli(*args, "-o", tmp_path / "a.onnx")
    second = cli(*args, "-o", tmp_path / "b.onnx")
    assert first.exit_code == 0 and second.exit_code == 0, second.stderr
    assert sha256_file(tmp_path / "a.onnx") == sha256_file(calibrated / "digits.int8-cpu.onnx")
    assert sha256_file(tmp_path / "a.onnx") == sha256_file(tmp_path / "b.onnx")
    rows = json.loads((tmp_path / "b.report.json").read_text())["rows"]  # named after -o
    assert rows[0]["ranges_cached"] is True


def test_method_auto_reports_every_method_and_keeps_one_per_target(digits, cli, tmp_path):
    result = cli(
        "calibrate",
        digits["onnx"],
        "--data",
        digits["train_dir"],
        "--calib-size",
        "64",
        "--eval-data",
        digits["heldout_dir"],
        "--eval-size",
        "200",
        "--method",
        "auto",
        "-o",
        tmp_path / "m-{target}.onnx",
    )
    assert result.exit_code == 0, result.stderr
    rows = json.loads((tmp_path / "m.report.json").read_text())["rows"]
    assert sorted({r["method"] for r in rows}) == ["entropy", "minmax", "percentile"]
    kept = [r for r in rows if r["selected"]]
    assert sorted(r["target"] for r in kept) == ["cpu", "tensorrt"]
    for row in kept:
        same_target = [r for r in rows if r["target"] == row["target"]]
        assert row["top1_agreement"] == max(r["top1_agreement"] for r in same_target)


def test_bad_calibration_is_caught_by_the_budget(digits, cli, tmp_path):
    constant = tmp_path / "constant.npy"
    np.save(constant, np.full((32, 3, 32, 32), 0.3, np.float32))
    result = cli(
        "calibrate",
        digits["onnx"],
        "--data",
        constant,
        "--eval-data",
        digits["heldout_dir"],
        "-o",
        tmp_path / "bad-{target}.onnx",
    )
    assert result.exit_code == 1
    assert without_progress(result.stderr).startswith("Error: ") and "budget 1" in result.stderr
    assert not list(tmp_path.glob("bad-*.onnx"))
    report = json.loads((tmp_path / "bad.report.json").read_text())
    assert report["failures"] and not report["artifacts"]


def test_fp16_within_a_tenth_of_a_point(digits, cli, tmp_path):
    out = tmp_path / "digits.fp16.onnx"
    result = cli("fp16", digits["onnx"], "--data", digits["heldout_dir"], "-o", out)
    assert result.exit_code == 0, result.stderr
    images, labels = digits["heldout_images"], digits["heldout_labels"]
    fidelity = compare_logits(
        ort_logits(digits["onnx"], "input", images, 64),
        ort_logits(out, "input", images, 64),
        labels,
    )
    assert fidelity.top1_drop_points() <= 0.1 and fidelity.top1_agreement >= 0.999
    model = onnx.load(str(out))
    assert read_artifact(out).metadata["precision"] == "fp16"
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    conv_weight = next(i for i in model.graph.initializer if i.dims and len(i.dims) == 4)
    assert conv_weight.data_type == TensorProto.FLOAT16
    # LRN is kept in FP32: its input comes through a Cast to float
    produced_by = {o: n for n in model.graph.node for o in n.output}
    for lrn in (n for n in model.graph.node if n.op_type == "LRN"):
        cast = produced_by[lrn.input[0]]
        assert cast.op_type == "Cast" and cast.attribute[0].i == TensorProto.FLOAT


def test_output_equal_to_input_is_refused(digits, cli):
    result = cli("calibrate", digits["onnx"], "--target", "cpu", "-o", digits["onnx"])
    assert result.exit_code == 2 and "is the input model" in result.stderr
    result = cli("fp16", digits["onnx"], "-o", digits["onnx"])
    assert result.exit_code == 2 and "is the input model" in result.stderr


def test_int8_model_is_not_recalibrated(calibrated, cli, tmp_path):
    result = cli(
        "calibrate",
        calibrated / "digits.int8-cpu.onnx",
        "--data",
        "synthetic",
        "-o",
        tmp_path / "x-{target}.onnx",
    )
    assert result.exit_code == 1 and "already an int8 model" in result.stderr


def test_foreign_model_needs_explicit_preprocessing(digits, cli, tmp_path):
    model = onnx.load(str(digits["onnx"]))
    del model.metadata_props[:]
    foreign = tmp_path / "foreign.onnx"
    onnx.save(model, str(foreign))
    args = [
        "calibrate",
        foreign,
        "--data",
        digits["train_dir"],
        "--calib-size",
        "32",
        "--eval-size",
        "32",
        "--target",
        "cpu",
        "-o",
        tmp_path / "f.onnx",
    ]
    result = cli(*args)
    assert result.exit_code == 2 and "preprocessing is unknown" in result.stderr
    assert "--input-size" in result.stderr
    result = cli(
        *args,
        "--input-size",
        "32",
        "--resize-size",
        "36",
        "--mean",
        "0.5,0.5,0.5",
        "--std",
        "0.5,0.5,0.5",
    )
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "f.onnx").exists()


def test_not_an_onnx_file(cli, tmp_path):
    bogus = tmp_path / "model.onnx"
    bogus.write_text("not a model")
    result = cli("calibrate", bogus, "--data", "synthetic")
    assert result.exit_code == 1 and "is not an ONNX model" in result.stderr
    result = cli("calibrate", tmp_path / "missing.onnx")
    assert result.exit_code == 1 and "not found" in result.stderr


def test_synthetic_data_is_labelled_and_not_enforced(digits, cli, tmp_path):
    result = cli(
        "calibrate",
        digits["onnx"],
        "--data",
        "synthetic",
        "--target",
        "cpu",
        "-o",
        tmp_path / "s.onnx",
    )
    assert result.exit_code == 0, result.stderr
    assert "SYNTHETIC" in result.stdout and "synthetic data" in result.stderr
    assert read_artifact(tmp_path / "s.onnx").metadata["synthetic_calibration"] == "true"
