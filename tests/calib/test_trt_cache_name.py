"""The legacy TensorRT calibration cache is named after the INT8 file the user chose
(``calibrate -o r18.trt.onnx``: ``r18.trt.trt-calibration.cache``, issue #24 part 6), and the
legacy build still finds it beside the model."""

from __future__ import annotations

import shutil

from alexnet_deploy.artifacts import ArtifactSet
from alexnet_deploy.calib.trt_cache import check_cache_source, parse_cache
from alexnet_deploy.engines.tensorrt_legacy import cache_for
from alexnet_deploy.fileio import sha256_file


def test_the_cache_name_follows_the_int8_file(tmp_path):
    s = ArtifactSet(tmp_path / "r18.onnx")
    assert s.trt_cache_for(s.int8("tensorrt")) == tmp_path / "r18.int8.trt-calibration.cache"
    elsewhere = tmp_path / "x" / "r18.int8-tensorrt.onnx"  # the set's own name, another folder
    assert s.trt_cache_for(elsewhere) == tmp_path / "x" / "r18.int8.trt-calibration.cache"
    chosen = tmp_path / "r18.trt.onnx"
    assert s.trt_cache_for(chosen) == tmp_path / "r18.trt.trt-calibration.cache"


def test_calibrate_o_writes_the_cache_under_the_chosen_name(digits, cli, tmp_path):
    model = tmp_path / "r18.onnx"
    shutil.copy(digits["onnx"], model)
    result = cli(
        "calibrate", model, "--data", digits["train_dir"], "--calib-size", "32",
        "--eval-data", digits["heldout_dir"], "--eval-size", "64", "--target", "tensorrt",
        "-o", tmp_path / "r18.trt.onnx",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    cache = tmp_path / "r18.trt.trt-calibration.cache"
    assert f"calibration cache: {cache}" in result.stdout.replace("\n", "")  # rich wraps it
    assert not (tmp_path / "r18.int8.trt-calibration.cache").exists()
    assert "input" in parse_cache(cache.read_text())
    check_cache_source(cache, sha256_file(model))  # it records the model it was calibrated on
    assert cache_for(model) == cache  # build --legacy-int8 of r18.onnx finds it


def test_the_legacy_build_prefers_the_sets_own_cache(tmp_path):
    model = tmp_path / "r18.onnx"
    named = tmp_path / "r18.trt.trt-calibration.cache"
    named.write_text("TRT-100000-EntropyCalibration2\n")
    assert cache_for(model) == named
    own = ArtifactSet(model).trt_cache()
    own.write_text("TRT-100000-EntropyCalibration2\n")
    assert cache_for(model) == own
    (tmp_path / "other.trt.trt-calibration.cache").write_text("")  # another model's stem
    assert ArtifactSet(model).trt_caches() == [own, named]
