"""import: any ONNX image classifier gets a model card on a copy (issue #23, items 1 and 7).

Real models throughout: tiny CNNs exported by PyTorch (tests/foreign_models.py), bad ones
built with onnx.helper, run in ONNX Runtime; images are the shipped photographs decoded by
Pillow. The user's file is byte-identical after every import, refused or not."""

from __future__ import annotations

import json
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from alexnet_deploy.calib.images import load_rgb, normalize, preprocess, resize_crop
from alexnet_deploy.calib.sources import shipped_images
from alexnet_deploy.fileio import sha256_file
from alexnet_deploy.modelcard import PRESETS, ModelCard
from alexnet_deploy.models.variants import IMAGENET_MEAN, IMAGENET_STD, Preprocessing
from alexnet_deploy.onnx_model import read_artifact
from tests import foreign_models as F
from tests.test_faults import _snapshot, assert_clean_failure

SHIPPED = shipped_images()
LABELS = [f"digit-{i}" for i in range(10)]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("foreign")
    return {
        "dynamic": F.export(root / "dynamic.onnx"),
        "batch1": F.export(root / "batch1.onnx", batch=1),
        "nhwc": F.export(root / "nhwc.onnx", batch=1, nhwc=True),
        "two": F.export(root / "two.onnx", two_inputs=True),
    }


def _import(cli, model, out, *flags):
    before = sha256_file(model)
    result = cli("import", model, "-o", out, *flags)
    assert result.exit_code == 0, result.stderr
    assert sha256_file(model) == before  # the user's file is only read
    return result, read_artifact(out)


def _logits(path, batch: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: batch})[0]


@pytest.mark.parametrize("preset", list(PRESETS))
def test_each_preset_is_recorded_and_read_back(cli, models, tmp_path, preset):
    result, info = _import(cli, models["dynamic"], tmp_path / "m.onnx", "--preset", preset)
    card, base = info.card(), PRESETS[preset]
    assert (card.input_size, card.num_classes, card.source) == (F.SIZE, 10, "import")
    assert card.resize_size == round(F.SIZE * base.resize_size / base.input_size)
    assert (card.mean, card.std, card.scale) == (base.mean, base.std, base.scale)
    assert (card.channel_order, card.interpolation) == (base.channel_order, base.interpolation)
    assert info.model_name == "dynamic" and card.name == "dynamic"
    assert info.preprocessing() == card.preprocessing()
    assert "model card of dynamic" in result.stdout and base.channel_order in result.stdout


def test_flags_override_the_preset(cli, models, tmp_path):
    _, info = _import(
        cli, models["dynamic"], tmp_path / "m.onnx", "--preset", "inception",
        "--resize-size", "20", "--mean", "0.1,0.2,0.3", "--std", "0.4,0.5,0.6", "--scale", "0.5",
        "--channel-order", "bgr", "--interpolation", "nearest", "--name", "my-net",
    )  # fmt: skip
    card = info.card()
    assert (card.name, card.input_size, card.resize_size) == ("my-net", F.SIZE, 20)
    assert (card.mean, card.std, card.scale) == ((0.1, 0.2, 0.3), (0.4, 0.5, 0.6), 0.5)
    assert (card.channel_order, card.interpolation, card.crop) == ("BGR", "nearest", "center")
    assert info.model_name == "my-net"


def test_labels_are_embedded_and_name_predict_s_classes(cli, models, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(LABELS) + "\n")
    _, info = _import(cli, models["dynamic"], tmp_path / "m.onnx", "--labels", labels)
    assert info.labels == tuple(LABELS)
    result = cli(
        "predict", SHIPPED / "cat.jpg", "--model", tmp_path / "m.onnx", "--top", "3",
        "--format", "json", "--work-dir", tmp_path / "w",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    top = json.loads(result.stdout)["images"][0]["top"]
    assert len(top) == 3 and all(t["name"] == LABELS[t["class"]] for t in top)


def test_an_imported_model_goes_through_calibrate_compare_and_predict(cli, models, tmp_path):
    """The commands that refused a foreign model take its imported copy with no more flags."""
    model = tmp_path / "m.onnx"
    _import(cli, models["batch1"], model, "--preset", "raw255")
    result = cli("calibrate", model, "--data", "shipped", "--target", "cpu")
    assert result.exit_code == 0, result.stderr
    int8 = tmp_path / "m.int8-cpu.onnx"
    assert int8.is_file() and read_artifact(int8).model_name == "batch1"
    result = cli("compare", model, int8, "--data", "shipped", "--format", "json")
    assert result.exit_code == 0, result.stderr
    result = cli("predict", SHIPPED, "--model", model, "--work-dir", tmp_path / "w")
    assert result.exit_code == 0, result.stderr
    assert "class " in result.stdout and "astronaut.jpg" in result.stdout


def test_the_torch_backend_refuses_an_imported_model_with_the_reason(cli, models, tmp_path):
    _import(cli, models["dynamic"], tmp_path / "m.onnx")
    before = _snapshot(tmp_path)
    result = cli("build", tmp_path / "m.onnx", "--backend", "torch", "--work-dir", tmp_path / "w")
    assert_clean_failure(result, 1, "an imported model has none", before, [tmp_path])


def test_nhwc_input_gets_a_transpose_and_the_copy_takes_nchw(cli, models, tmp_path):
    result, info = _import(cli, models["nhwc"], tmp_path / "m.onnx")
    assert list(info.input.dims) == ["batch", 3, F.SIZE, F.SIZE]
    assert info.card().layout == "NHWC" and "takes NCHW" in result.stdout
    x = np.random.default_rng(0).standard_normal((2, 3, F.SIZE, F.SIZE)).astype(np.float32)
    expected = _logits(models["nhwc"], x[:1].transpose(0, 2, 3, 1))
    np.testing.assert_allclose(_logits(tmp_path / "m.onnx", x)[:1], expected, rtol=1e-5, atol=1e-6)


def test_a_fixed_batch_is_made_dynamic_where_the_graph_allows_it(cli, models, tmp_path):
    result, info = _import(cli, models["batch1"], tmp_path / "m.onnx")
    assert info.fixed_batch is None and "dynamic in the copy" in result.stdout
    x = np.zeros((3, 3, F.SIZE, F.SIZE), np.float32)
    assert _logits(tmp_path / "m.onnx", x).shape == (3, 10)


class FlattenToOne(torch.nn.Module):
    """A graph that fixes its batch: it flattens to [1, -1]."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(3 * F.SIZE * F.SIZE, 10)

    def forward(self, x):
        return self.fc(x.reshape(1, -1))


def test_a_batch_the_graph_fixes_is_kept_and_said(cli, tmp_path):
    path = tmp_path / "fixed.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            FlattenToOne().eval(), (torch.zeros(1, 3, F.SIZE, F.SIZE),), str(path),
            input_names=["x"], output_names=["logits"], opset_version=17, dynamo=False,
        )  # fmt: skip
    result, info = _import(cli, path, tmp_path / "m.onnx")
    assert info.fixed_batch == 1 and "the copy keeps batch 1" in result.stderr  # a warning


def test_a_symbolic_height_and_width_are_fixed_to_the_card_s_size(cli, tmp_path):
    path = tmp_path / "any-size.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            F.TinyCnn().eval(), (torch.zeros(2, 3, F.SIZE, F.SIZE),), str(path),
            input_names=["x"], output_names=["logits"], opset_version=17, dynamo=False,
            dynamic_axes={"x": {0: "batch", 2: "h", 3: "w"}, "logits": {0: "batch"}},
        )  # fmt: skip
    _, info = _import(cli, path, tmp_path / "m.onnx", "--input-size", "24")
    assert list(info.input.dims) == ["batch", 3, 24, 24] and info.card().resize_size == 27
    assert _logits(info.path, np.zeros((2, 3, 24, 24), np.float32)).shape == (2, 10)


def _graph(path, x_type, x_dims, outputs, nodes=None):
    """A tiny ONNX model (Identity nodes) with the given input and outputs."""
    x = helper.make_tensor_value_info("x", x_type, x_dims)
    outs = [helper.make_tensor_value_info(n, t, d) for n, t, d in outputs]
    nodes = nodes or [helper.make_node("Identity", ["x"], [o.name]) for o in outs]
    graph = helper.make_graph(nodes, "bad", [x], outs)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


IMAGE = ["N", 3, F.SIZE, F.SIZE]
FLOAT, INT64, UINT8 = TensorProto.FLOAT, TensorProto.INT64, TensorProto.UINT8
BAD = {
    "integer input": (UINT8, IMAGE, [("y", FLOAT, ["N", 10])], "input 'x' is uint8"),
    "not an image": (FLOAT, ["N", 10], [("y", FLOAT, ["N", 10])], "not an image"),
    "channels": (FLOAT, ["N", 5, 8, 8], [("y", FLOAT, ["N", 10])], "no channel axis of 3"),
    "greyscale": (FLOAT, ["N", 1, 8, 8], [("y", FLOAT, ["N", 10])], "a single channel"),
    "multi-output": (
        FLOAT, IMAGE, [("a", FLOAT, ["N", 10]), ("b", FLOAT, ["N", 10])], "2 outputs ('a', 'b')",
    ),
    "integer head": (FLOAT, IMAGE, [("y", INT64, ["N"])], "output 'y' is int64 (a class index"),
    "float16 input": (TensorProto.FLOAT16, IMAGE, [("y", FLOAT, ["N", 10])], "is float16"),
    "not [batch, classes]": (FLOAT, IMAGE, [("y", FLOAT, ["N", 10, 1, 1])], "[batch, classes]"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_model_gets_one_line_and_nothing_is_written(cli, tmp_path, case):
    x_type, x_dims, outputs, text = BAD[case]
    model = _graph(tmp_path / "bad.onnx", x_type, x_dims, outputs)
    before = _snapshot(tmp_path)
    result = cli("import", model, "-o", tmp_path / "out.onnx")
    assert_clean_failure(result, 1, text, before, [tmp_path])
    assert not (tmp_path / "out.onnx").exists()


def test_several_inputs_are_refused(cli, models, tmp_path):
    before = _snapshot(models["two"].parent)
    result = cli("import", models["two"], "-o", tmp_path / "out.onnx")
    assert_clean_failure(result, 1, "has 2 inputs ('x', 'y')", before, [models["two"].parent])
    assert not (tmp_path / "out.onnx").exists()


def test_external_data_is_embedded_and_missing_data_refused(cli, models, tmp_path):
    external = tmp_path / "ext.onnx"
    model = onnx.load(str(models["dynamic"]))
    onnx.save(
        model, str(external), save_as_external_data=True, location="ext.data", size_threshold=0
    )
    _, info = _import(cli, external, tmp_path / "m.onnx")
    x = np.ones((2, 3, F.SIZE, F.SIZE), np.float32)
    np.testing.assert_allclose(_logits(info.path, x), _logits(models["dynamic"], x), rtol=1e-6)
    (tmp_path / "ext.data").unlink()
    before = _snapshot(tmp_path)
    result = cli("import", external, "-o", tmp_path / "again.onnx")
    assert_clean_failure(result, 1, "external data files that cannot be read", before, [tmp_path])


@pytest.mark.parametrize(
    "flags, text, code",
    [
        (("--resize-size", "8"), "below the input size", 2),
        (("--input-size", "32"), "the model takes 16x16 pixels", 2),
        (("--input-size", "0"), "--input-size must be at least 1", 2),
        (("--std", "0.2,0,0.2"), "each must be above 0", 2),
        (("--name", "a b"), "not usable in file, report and Triton names", 2),
    ],
)
def test_a_card_that_cannot_be_right_is_refused(cli, models, tmp_path, flags, text, code):
    before = _snapshot(tmp_path)
    result = cli("import", models["dynamic"], "-o", tmp_path / "m.onnx", *flags)
    assert_clean_failure(result, code, text, before, [tmp_path])


def test_labels_that_do_not_match_the_classes_are_refused(cli, models, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("cat\ndog\n")
    before = _snapshot(tmp_path)
    result = cli("import", models["dynamic"], "-o", tmp_path / "m.onnx", "--labels", labels)
    assert_clean_failure(
        result, 2, "the labels name 2 classes; the model has 10", before, [tmp_path]
    )


def test_an_existing_copy_is_replaced_only_with_force(cli, models, tmp_path):
    out = tmp_path / "m.onnx"
    _import(cli, models["dynamic"], out)
    before = _snapshot(tmp_path)
    assert_clean_failure(
        cli("import", models["dynamic"], "-o", out), 1, "--force", before, [tmp_path]
    )
    _, info = _import(cli, models["dynamic"], out, "--force", "--preset", "clip")
    assert info.card().interpolation == "bicubic"


def test_commands_that_need_a_card_name_import(cli, models, tmp_path):
    result = cli(
        "predict", SHIPPED / "cat.jpg", "--model", models["dynamic"], "--work-dir", tmp_path
    )
    assert result.exit_code == 2 and "alexnet-deploy import" in result.stderr
    result = cli("calibrate", models["dynamic"], "--target", "cpu", "-o", tmp_path / "q.onnx")
    assert result.exit_code == 2 and "alexnet-deploy import" in result.stderr  # as predict's
    assert "--input-size" in result.stderr  # calibrate's own flags still work, and are named


def test_alexnet_s_preprocessing_is_unchanged_bit_for_bit():
    """The defaults of the new fields are AlexNet's: the old formula, exactly."""
    pre = Preprocessing(256, 224, IMAGENET_MEAN, IMAGENET_STD)
    pixels = resize_crop(load_rgb(SHIPPED / "cat.jpg", pre), pre)
    old = (pixels.astype(np.float32) / 255.0 - np.float32(IMAGENET_MEAN)) / np.float32(IMAGENET_STD)
    assert np.array_equal(normalize(pixels, pre), old.transpose(2, 0, 1).astype(np.float32))


def test_channel_order_scale_and_crop_are_honoured_on_a_real_image():
    zero = dict(name="m", mean=(0.0, 0.0, 0.0))  # raw255's scale 1 and std 1: pixel levels
    rgb = ModelCard.from_preset("raw255", channel_order="RGB", **zero).preprocessing()
    bgr = ModelCard.from_preset("raw255", **zero).preprocessing()
    image = load_rgb(SHIPPED / "astronaut.jpg")
    a, b = preprocess(image, rgb), preprocess(image, bgr)
    assert np.array_equal(b, a[::-1])  # the same pixels, channels reversed
    assert 100 < float(a.max()) <= 255 and np.array_equal(a, np.round(a))  # scale 1
    whole = ModelCard.from_preset("imagenet", name="m", input_size=32, crop="none")
    squeezed = resize_crop(load_rgb(SHIPPED / "coffee.jpg"), whole.preprocessing())
    assert squeezed.shape == (32, 32, 3) and whole.resize_size == 32


def _unknown_operator_model(path):
    """A classifier whose first node is an operator no runtime has (com.acme:Swish2)."""
    x = helper.make_tensor_value_info("x", FLOAT, IMAGE)
    y = helper.make_tensor_value_info("y", FLOAT, ["N", 10])
    weight = onnx.numpy_helper.from_array(np.ones((3 * F.SIZE * F.SIZE, 10), np.float32), "w")
    nodes = [
        helper.make_node("Swish2", ["x"], ["h"], domain="com.acme"),
        helper.make_node("Flatten", ["h"], ["f"]),
        helper.make_node("MatMul", ["f", "w"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "odd", [x], [y], [weight])
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("com.acme", 1)]
    onnx.save(helper.make_model(graph, opset_imports=opsets), str(path))
    return path


def test_an_operator_a_runtime_lacks_is_named_with_the_runtime(cli, tmp_path):
    from alexnet_deploy.engines.options import BuildOptions
    from alexnet_deploy.engines.registry import get_backend
    from alexnet_deploy.errors import AlexnetDeployError

    model = _unknown_operator_model(tmp_path / "odd.onnx")
    before = _snapshot(tmp_path)
    result = cli("import", model, "-o", tmp_path / "m.onnx")
    text = "ONNX Runtime has no implementation of operator com.acme:Swish2"
    assert_clean_failure(result, 1, text, before, [tmp_path])
    openvino = get_backend("openvino")
    if not openvino.capability().available:
        pytest.skip(f"OpenVINO: {openvino.capability().reason}")
    with pytest.raises(AlexnetDeployError, match="OpenVINO has no implementation of operator"):
        openvino.build(model, BuildOptions(), tmp_path / "ov")


def test_package_writes_the_card_s_labels_for_triton(cli, models, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(LABELS) + "\n")
    _import(cli, models["dynamic"], tmp_path / "m.onnx", "--labels", labels, "--name", "tiny")
    result = cli(
        "package", "--triton", tmp_path / "repo", "--model", tmp_path / "m.onnx",
        "--work-dir", tmp_path / "w",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    written = (tmp_path / "repo" / "tiny_fp32_onnx" / "labels.txt").read_text().split()
    assert written == LABELS
