"""bench --end-to-end: image bytes to label through real engines, each stage timed, with the
preprocessing on the host or inside OpenVINO's compiled model."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from alexnet_deploy.engines.registry import get_backend

OPENVINO = get_backend("openvino").capability().available


@pytest.fixture
def model(digits, tmp_path):
    path = tmp_path / "m.onnx"
    shutil.copy(digits["onnx"], path)
    return path


def test_end_to_end_table_and_stage_shares(cli, model, digits, tmp_path):
    out = tmp_path / "out"
    result = cli(
        "bench", "--end-to-end", "--model", model, "--data", digits["heldout_dir"],
        "--inputs", digits["heldout_dir"] / "1", "--precision", "fp32", "--precision", "int8",
        "--min-seconds", "0.2", "--max-seconds", "0.5", "--work-dir", tmp_path / "w",
        "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    rows = json.loads((out / "end-to-end.json").read_text())["rows"]
    where_ort = ("host", "host-opencv", "onnx-graph", "onnx-graph-resize")
    expected = {("ort", p, where) for p in ("fp32", "int8") for where in where_ort}
    if OPENVINO:
        expected |= {
            ("openvino", p, where)
            for p in ("fp32", "int8")
            for where in ("host", "host-opencv", "openvino-ppp")
        }
    assert {(r["backend"], r["precision"], r["placement"]) for r in rows} == expected
    for r in rows:
        shares = [r[f"{s}_pct"] for s in ("decode", "preprocess", "inference", "postprocess")]
        assert sum(shares) == pytest.approx(100) and min(shares) > 0
        # the stages, timed back to back, account for the whole within 5%
        assert 95 <= r["stages_over_wall_pct"] <= 100.5, r
        assert r["images_per_s"] > 0 and r["images"] >= 1
        # the same network on pixels that differ by a level at most: the host's top-1 mostly
        assert r["top1_agrees_with_host_pct"] >= 80 if r["placement"] != "host" else 100, r
    assert "decode %" in result.stdout and (out / "end-to-end.md").read_text().count("|") > 10


@pytest.mark.skipif(not OPENVINO, reason="OpenVINO is not installed")
def test_preprocessing_inside_openvino_matches_the_host(digits, model):
    """uint8 NHWC into the compiled model (convert, layout, mean, scale as graph operations)
    gives the logits of the host's float32 preprocessing fed to the same runtime with the
    same settings."""
    import openvino as ov

    from alexnet_deploy.bench.end_to_end import ppp_infer
    from alexnet_deploy.calib.images import load_rgb, preprocess, resize_crop
    from alexnet_deploy.onnx_model import read_artifact

    pre = read_artifact(model).preprocessing()
    infer = ppp_infer(model, pre)
    from alexnet_deploy.engines.openvino import compile_config
    from alexnet_deploy.engines.options import BuildOptions

    core = ov.Core()
    config = compile_config(BuildOptions(), core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    plain = core.compile_model(str(model), "CPU", config)
    request = plain.create_infer_request()
    files = sorted((digits["heldout_dir"] / "3").iterdir())[:8]
    for path in files:
        image = load_rgb(path)
        inside = np.asarray(infer(resize_crop(image, pre)[None]))[0]
        host = np.asarray(request.infer({0: preprocess(image, pre)[None]})[0])[0]
        np.testing.assert_allclose(inside, host, rtol=1e-4, atol=1e-4)


def test_preprocessing_inside_the_onnx_graph_matches_the_host(digits, model, tmp_path):
    """The uint8-input copy of the model (cast, transpose, normalize prepended) gives the
    logits of host preprocessing, same runtime."""
    import onnxruntime as ort

    from alexnet_deploy.calib.images import load_rgb, preprocess, resize_crop
    from alexnet_deploy.exporter.pixels import pixel_session, write_with_pixel_input
    from alexnet_deploy.onnx_model import read_artifact

    pre = read_artifact(model).preprocessing()
    infer = pixel_session(write_with_pixel_input(model, pre, tmp_path / "pre.onnx", resize=False))
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    for path in sorted((digits["heldout_dir"] / "8").iterdir())[:8]:
        image = load_rgb(path)
        inside = np.asarray(infer(resize_crop(image, pre)[None]))[0]
        host = session.run(None, {session.get_inputs()[0].name: preprocess(image, pre)[None]})
        np.testing.assert_allclose(inside, host[0][0], rtol=1e-4, atol=1e-4)


def test_opencv_host_preprocessing_matches_pillow_within_a_level(digits, model):
    """The OpenCV placement decodes and resizes with OpenCV: on images that need no resize the
    tensor is the host's exactly; reduced, within a few levels (INTER_AREA vs Pillow's filter)."""
    from PIL import Image

    from alexnet_deploy.bench.end_to_end import opencv_decode, opencv_preprocess
    from alexnet_deploy.calib.images import load_rgb, preprocess
    from alexnet_deploy.onnx_model import read_artifact

    pre = read_artifact(model).preprocessing()
    std = np.asarray(pre.std, np.float32).reshape(3, 1, 1) * 255
    for path in sorted((digits["heldout_dir"] / "5").iterdir())[:5]:
        image = load_rgb(path)
        same = opencv_preprocess(opencv_decode(path.read_bytes()), pre)[0]
        np.testing.assert_allclose(same, preprocess(image, pre), atol=1e-5)
        bigger = image.resize((97, 61), Image.Resampling.LANCZOS)
        reduced = opencv_preprocess(np.asarray(bigger), pre)[0]
        levels = np.abs(reduced - preprocess(bigger, pre)) * std
        assert levels.mean() < 3, levels.mean()
