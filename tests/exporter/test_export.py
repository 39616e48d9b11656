"""Real exports of both variants, validated by real ONNX Runtime against real PyTorch."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from alexnet_deploy.exporter.config import ExportConfig
from alexnet_deploy.exporter.metadata import manifest_path, read_metadata
from alexnet_deploy.exporter.pipeline import export_onnx
from alexnet_deploy.fileio import sha256_file
from alexnet_deploy.inputs import seeded_images
from alexnet_deploy.models.variants import get_variant
from alexnet_deploy.models.weights import build_model


@pytest.mark.parametrize("name", ["torchvision", "paper"])
def test_export_validates_at_batch_1_and_8(exported, name):
    result = exported(name)
    assert [c.batch for c in result.comparisons] == [1, 8]
    for comparison in result.comparisons:
        assert comparison.within_tolerance and comparison.top1_agreement == 1.0
        assert comparison.max_abs_diff < 1e-5


@pytest.mark.parametrize("name", ["torchvision", "paper"])
def test_graph_has_dynamic_batch_and_declared_names(exported, name):
    variant = get_variant(name)
    model = onnx.load(str(exported(name).path), load_external_data=False)
    (inp,) = model.graph.input
    (out,) = model.graph.output
    dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]  # noqa: E731
    assert inp.name == "input" and dims(inp) == ["batch", *variant.input_shape]
    assert out.name == "logits" and dims(out) == ["batch", 1000]
    assert model.opset_import[0].version == 18
    session = ort.InferenceSession(str(exported(name).path), providers=["CPUExecutionProvider"])
    assert session.run(None, {"input": seeded_images(variant, 3, 0)})[0].shape == (3, 1000)


def test_metadata_and_manifest_say_untrained(exported):
    result = exported("paper")
    meta = read_metadata(result.path)
    assert meta["variant"] == "paper" and meta["input_size"] == "227"
    assert meta["weights"] == "untrained" and meta["weights_sha256"] == "untrained"
    assert meta["seed"] == "0" and meta["opset"] == "18"
    assert json.loads(meta["mean"]) == [0.485, 0.456, 0.406]
    assert meta["torch_version"] == torch.__version__ and meta["onnx_version"] == onnx.__version__
    manifest = json.loads(manifest_path(result.path).read_text())
    assert manifest["sha256"] == sha256_file(result.path) == result.sha256
    assert manifest["metadata"]["weights"] == "untrained"
    assert [b["batch"] for b in manifest["validation"]["batches"]] == [1, 8]


def test_same_seed_gives_identical_bytes(exported, tmp_path):
    again = export_onnx(get_variant("torchvision"), tmp_path / "again.onnx", seed=0)
    assert again.sha256 == exported("torchvision").sha256


def test_checkpoint_export_and_softmax_output(tmp_path):
    """A torchvision-keyed checkpoint exports; its sha256 is recorded; --softmax and --opset."""
    variant = get_variant("torchvision")
    source, _ = build_model(variant, None, seed=7)
    with torch.no_grad():  # scale the last layer so logits are far from uniform
        source.classifier[6].weight.mul_(50.0)
    ckpt = tmp_path / "alexnet.pth"
    torch.save(source.state_dict(), ckpt)
    config = ExportConfig(opset=17, softmax=True)
    result = export_onnx(variant, tmp_path / "m.onnx", weights=ckpt, seed=0, config=config)
    meta = read_metadata(result.path)
    assert meta["weights"] == "trained" and meta["weights_sha256"] == sha256_file(ckpt)
    assert meta["outputs"] == "logits,probabilities"
    model = onnx.load(str(result.path), load_external_data=False)
    assert model.opset_import[0].version == 17
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    images = seeded_images(variant, 4, 1)
    logits, probabilities = session.run(["logits", "probabilities"], {"input": images})
    with torch.no_grad():
        expected = source(torch.from_numpy(images)).numpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert (probabilities.argmax(1) == expected.argmax(1)).all()


# --- export --preprocess: decoded pixels of any size in, the preprocessing in the graph ---


@pytest.fixture(scope="module")
def pixel_export(digits, tmp_path_factory):
    from alexnet_deploy.models.variants import register_variant
    from tests.digits import DIGITS, SEED

    register_variant(DIGITS)
    out = tmp_path_factory.mktemp("pixels") / "digits-pixels.onnx"
    return export_onnx(
        DIGITS, out, weights=digits["checkpoint"], seed=SEED, config=ExportConfig(preprocess=True)
    )


def test_preprocess_export_takes_pixels_of_any_size_and_matches_the_host(pixel_export, digits):
    from PIL import Image

    from alexnet_deploy.calib.images import load_rgb, preprocess
    from alexnet_deploy.exporter.pixels import PIXELS_ANY_SIZE, pixel_session
    from alexnet_deploy.onnx_model import read_artifact

    info = read_artifact(pixel_export.path)
    assert info.input.name == "pixels" and info.input.dtype == "uint8"
    assert list(info.input.dims) == ["batch", "height", "width", 3]
    assert info.metadata["input_layout"] == PIXELS_ANY_SIZE
    manifest = json.loads(manifest_path(pixel_export.path).read_text())
    check = manifest["validation"]["preprocessing_in_graph"]
    assert check == pixel_export.pixels_check and check["max_levels"] <= 1.5
    pre = info.preprocessing()
    infer = pixel_session(pixel_export.path)
    float_model = ort.InferenceSession(str(digits["onnx"]), providers=["CPUExecutionProvider"])
    agree, files = 0, sorted((digits["heldout_dir"] / "4").iterdir())[:10]
    for path in files:
        image = load_rgb(path)  # already 36 px: the graph's resize is the identity
        host = float_model.run(None, {"input": preprocess(image, pre)[None]})[0][0]
        np.testing.assert_allclose(infer(np.asarray(image)[None])[0], host, atol=1e-4, rtol=1e-4)
        bigger = image.resize((97, 61), Image.Resampling.LANCZOS)  # reduced in the graph
        logits = infer(np.asarray(bigger)[None])[0]
        host = float_model.run(None, {"input": preprocess(bigger, pre)[None]})[0][0]
        agree += int(np.argmax(logits) == np.argmax(host))
    assert agree >= len(files) - 1  # one pixel level apart can flip a close call, rarely


@pytest.mark.parametrize(
    "command", [("build", "--backend", "ort", "--work-dir"), ("calibrate", "--output")]
)
def test_preprocess_export_is_refused_by_float_stages_with_a_hint(
    pixel_export, cli, tmp_path, command
):
    name, *options = command
    result = cli(name, pixel_export.path, *options, tmp_path / "w")
    assert result.exit_code != 0 and "Traceback" not in result.stderr
    assert "exported with --preprocess" in result.stderr and "without --preprocess" in result.stderr


def test_preprocess_needs_opset_18_and_writes_nothing(cli, tmp_path):
    out = tmp_path / "m.onnx"
    result = cli("export", "--preprocess", "--opset", "17", "-o", out)
    assert result.exit_code == 2 and "--preprocess needs opset 18" in result.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == []
