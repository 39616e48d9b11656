"""The review of issue #23's work: each finding, fixed, with the test that failed before.

Real components throughout: tiny CNNs exported by PyTorch (tests/foreign_models.py) and run
in ONNX Runtime, INT8 and FP16 files written by the tool's own commands, ONNX Runtime's
quantizers, the shipped photographs decoded by Pillow and OpenCV, user modules imported from
files on disk and rebuilt by the torch backend."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from alexnet_deploy import constants as C
from alexnet_deploy.calib.sources import shipped_images
from alexnet_deploy.errors import AlexnetDeployError, UsageError
from alexnet_deploy.onnx_model import read_artifact
from tests import foreign_models as F
from tests.test_faults import _snapshot, assert_clean_failure

SHIPPED = shipped_images()


def _import(cli, model, out, *flags):
    result = cli("import", model, "-o", out, *flags)
    assert result.exit_code == 0, result.stderr
    return result, read_artifact(out)


def _with_metadata(path, values: dict[str, str]):
    proto = onnx.load(str(path))
    helper.set_model_props(proto, values)
    onnx.save(proto, str(path))
    return path


# 1. import: a quantized or 16-bit model is refused; the copy's metadata starts clean


@pytest.mark.parametrize("made_by", ["calibrate", "fp16", "bf16 weights"])
def test_import_refuses_a_model_made_from_the_fp32_one(cli, tmp_path, made_by):
    """Before: the INT8, FP16 or BF16 file was copied and labelled precision fp32."""
    model = tmp_path / "m.onnx"
    _import(cli, F.export(tmp_path / "user.onnx"), model, "--preset", "raw255")
    if made_by == "calibrate":
        assert cli("calibrate", model, "--data", "shipped", "--target", "cpu").exit_code == 0
        derived, text = tmp_path / "m.int8-cpu.onnx", "quantized nodes (DequantizeLinear"
    elif made_by == "fp16":
        assert cli("fp16", model, "--data", "shipped").exit_code == 0
        derived, text = tmp_path / "m.fp16.onnx", "FP16 weights"
    else:  # a weight stored as bfloat16, cast to float in the graph
        derived, text = tmp_path / "m-bf16.onnx", "BF16 weights"
        proto = onnx.load(str(model))
        conv = next(i for i in proto.graph.initializer if len(i.dims) == 4)
        stored = helper.make_tensor(
            conv.name + "_bf16", TensorProto.BFLOAT16, list(conv.dims),
            numpy_helper.to_array(conv).flatten().tolist(),
        )  # fmt: skip
        proto.graph.initializer.remove(conv)
        proto.graph.initializer.append(stored)
        cast = helper.make_node("Cast", [stored.name], [conv.name], to=TensorProto.FLOAT)
        proto.graph.node.insert(0, cast)
        onnx.save(proto, str(derived))
    before = _snapshot(tmp_path)
    result = cli("import", derived, "-o", tmp_path / "again.onnx")
    assert_clean_failure(result, 1, text, before, [tmp_path])
    assert "import the FP32 model; calibrate/fp16/bf16 make those variants" in result.stderr


def test_the_copy_s_metadata_is_its_card_alone(cli, tmp_path):
    """A file that another run of the tool described (an export's variant and weights, an
    --from source, labels, a plan, a layout, a precision): before, every key stayed beside the
    new card (stale labels named predict's classes; from_spec sent the torch backend to
    another model's source). After: the card and precision fp32 only; other tools' keys kept."""
    user = _with_metadata(
        F.export(tmp_path / "user.onnx"),
        {
            **{
                C.METADATA_PREFIX + k: v
                for k, v in {
                    "variant": "torchvision", "weights": "untrained", "from_spec": "x.py:make",
                    "labels": '["a", "b"]', "precision_plan": "{}", "precision": "int8",
                    "source_sha256": "0" * 64, "model_name": "old-name", "layout": "NHWC",
                }.items()
            },
            "producer_note": "kept",
        },
    )  # fmt: skip
    result, info = _import(cli, user, tmp_path / "m.onnx", "--name", "fresh")
    card = info.card()
    assert info.metadata == {**card.to_metadata(), "precision": "fp32"}
    assert info.labels is None and info.model_name == "fresh" and not info.ours
    assert card.layout == "NCHW"  # the graph's: no Transpose of ours in front of it
    props = {p.key: p.value for p in onnx.load(str(tmp_path / "m.onnx")).metadata_props}
    assert props["producer_note"] == "kept"
    top = cli("predict", SHIPPED / "cat.jpg", "--model", info.path, "--format", "json",
              "--work-dir", tmp_path / "w")  # fmt: skip
    assert top.exit_code == 0, top.stderr


# 7. an imported NHWC copy imported again keeps its layout


def test_reimporting_an_nhwc_copy_keeps_the_recorded_layout(cli, tmp_path):
    """Before: the copy (NCHW in, a Transpose in front) imported again recorded NCHW."""
    user = F.export(tmp_path / "nhwc.onnx", batch=1, nhwc=True)
    _, first = _import(cli, user, tmp_path / "first.onnx")
    _, again = _import(cli, first.path, tmp_path / "again.onnx", "--name", "again")
    assert first.card().layout == again.card().layout == "NHWC"
    assert list(again.input.dims) == ["batch", 3, F.SIZE, F.SIZE]
    plain = F.export(tmp_path / "nchw.onnx")
    assert _import(cli, plain, tmp_path / "p.onnx")[1].card().layout == "NCHW"


# 11. the default name keeps the dots of the file's stem


def test_the_default_name_is_the_whole_stem(cli, tmp_path, monkeypatch):
    """Before: resnet50.v1.5.onnx and resnet50.v2.onnx were both named resnet50 and imported
    to the same work/resnet50.onnx (the second refused, or replacing the first with --force)."""
    monkeypatch.chdir(tmp_path)
    for stem in ("resnet50.v1.5", "resnet50.v2", "my model+v3"):
        user = F.export(tmp_path / f"{stem}.onnx")
        result = cli("import", user)
        assert result.exit_code == 0, result.stderr
    names = sorted(p.name for p in (tmp_path / "work").glob("*.onnx"))
    assert names == ["my-model-v3.onnx", "resnet50.v1.5.onnx", "resnet50.v2.onnx"]
    assert read_artifact(tmp_path / "work" / "resnet50.v1.5.onnx").model_name == "resnet50.v1.5"


def test_a_file_without_a_card_is_named_by_its_stem_without_the_tool_s_suffixes(tmp_path):
    """ArtifactInfo.model_name's fallback and the artifact set's stem: before, both cut at the
    first dot (resnet50.v1.5.int8-cpu.onnx: "resnet50", its set resnet50.onnx)."""
    from alexnet_deploy.artifacts import ArtifactSet, stem_of

    for name in ("resnet50.v1.5.onnx", "resnet50.v1.5.int8-cpu.onnx", "resnet50.v1.5.fp16.onnx",
                 "resnet50.v1.5.plan-tensorrt.onnx"):  # fmt: skip
        info = read_artifact(F.export(tmp_path / name))
        assert info.model_name == "resnet50.v1.5" == stem_of(info.path), name
        assert ArtifactSet.of(info.path).model.name == "resnet50.v1.5.onnx"
    assert stem_of(tmp_path / "resnet50.v1.5.int8.report.json") == "resnet50.v1.5"


# 8. a batch the graph fixes: a warning naming the node, and a hint that does not loop back


class FlattenToBatch(torch.nn.Module):
    """A graph that fixes its batch: it flattens to [batch, -1] with the batch a constant."""

    def __init__(self, batch: int) -> None:
        super().__init__()
        self.batch = batch
        self.fc = torch.nn.Linear(3 * F.SIZE * F.SIZE, 10)

    def forward(self, x):
        return self.fc(x.reshape(self.batch, -1))


def _fixed(path, batch: int):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            FlattenToBatch(batch).eval(), (torch.zeros(batch, 3, F.SIZE, F.SIZE),), str(path),
            input_names=["x"], output_names=["logits"], opset_version=17, dynamo=False,
        )  # fmt: skip
    return path


@pytest.mark.parametrize("batch", [1, 2])
def test_a_kept_batch_is_a_warning_naming_the_node_and_the_refusals(cli, tmp_path, batch):
    """Before: a note on stdout with ONNX Runtime's message, and ONNX Runtime's own error line
    logged on stderr beside it; nothing said what the kept batch costs."""
    result, info = _import(cli, _fixed(tmp_path / "fixed.onnx", batch), tmp_path / "m.onnx")
    warning = [line for line in result.stderr.splitlines() if line.startswith("Warning:")]
    assert len(warning) == 1 and "keeps batch" not in result.stdout
    assert f"node '/fc/Gemm' (Gemm) fails at batch {3 - batch}: GEMM" in warning[0]
    assert f"the copy keeps batch {batch}" in warning[0] and "Re-export the model" in warning[0]
    if batch == 1:
        assert "one image at a time" in warning[0] and "at a batch above 1 is refused" in warning[0]
    else:
        assert "every engine refuses it" in warning[0] and "calibrate, fp16" in warning[0]
    assert "onnxruntime" not in result.stderr.lower()  # ONNX Runtime's log line left out
    assert info.fixed_batch == batch


def test_build_s_hint_for_an_imported_fixed_batch_does_not_say_import(cli, tmp_path):
    """Before: build's hint told the user to run import, which had just kept the batch."""
    _, info = _import(cli, _fixed(tmp_path / "fixed.onnx", 2), tmp_path / "m.onnx")
    before = _snapshot(tmp_path)
    built = cli("build", info.path, "--backend", "ort", "--work-dir", tmp_path / "w")
    assert_clean_failure(built, 1, "has a fixed batch of 2", before, [tmp_path])
    hint = next(line for line in built.stderr.splitlines() if line.startswith("Hint:"))
    assert "alexnet-deploy import" not in hint and "re-export it with a dynamic batch" in hint
    assert "the graph fixes its batch" in hint


# 9. a rank-3 input: no batch axis


@pytest.mark.parametrize("dims", [[3, F.SIZE, F.SIZE], [F.SIZE, F.SIZE, 3]])
def test_an_input_without_a_batch_axis_is_named_so(cli, tmp_path, dims):
    """Before: "not an image [batch, C, H, W]" with the hint that the tool runs classifiers."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    model = tmp_path / "chw.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(model))
    before = _snapshot(tmp_path)
    result = cli("import", model, "-o", tmp_path / "out.onnx")
    assert_clean_failure(result, 1, "one image with no batch axis", before, [tmp_path])
    assert "leading dynamic batch axis" in result.stderr


# 2./3. summary: integer layers get rows; MACs per image at a fixed batch


def _tinyres(path, batch=None):
    from tests.test_graph_summary import SIZE, TinyRes

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = TinyRes().eval()
    dynamic = {"x": {0: "batch"}, "logits": {0: "batch"}} if batch is None else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            model, (torch.zeros(batch or 2, 3, SIZE, SIZE),), str(path), input_names=["x"],
            output_names=["logits"], dynamic_axes=dynamic, opset_version=17, dynamo=False,
        )  # fmt: skip
    return path


def test_integer_layers_are_rows_and_their_weights_parameters(tmp_path):
    """ONNX Runtime's dynamic quantization (ConvInteger, MatMulInteger: int32 out) and its
    QOperator form (QLinearConv: int8 out). Before: those layers had no row, so 560 of the 610
    parameters and 63,800 of the 96,336 MACs were missing. After: the FP32 model's counts;
    QLinearConv's weight and int32 bias are parameters, its scales and zero points are not."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        quantize_dynamic,
        quantize_static,
    )

    from alexnet_deploy.graph_summary import graph_layers
    from tests.test_graph_summary import SIZE

    fp32 = _tinyres(tmp_path / "t.onnx")
    dynamic = tmp_path / "dynamic.onnx"
    quantize_dynamic(str(fp32), str(dynamic))
    rows = graph_layers(dynamic)
    assert {"ConvInteger", "MatMulInteger"} <= {r.op_type for r in rows}
    assert (sum(r.params for r in rows), sum(r.macs for r in rows)) == (610, 96_336)
    convs = [(r.params, r.macs) for r in rows if r.op_type == "ConvInteger"]
    assert convs == [(216, 13_824), (72, 4_608), (64, 4_096)]  # weights; biases added after

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            self.batches = iter(
                [{"x": rng.standard_normal((1, 3, SIZE, SIZE), np.float32)} for _ in range(2)]
            )

        def get_next(self):
            return next(self.batches, None)

    qop = tmp_path / "qop.onnx"
    quantize_static(str(fp32), str(qop), Reader(), quant_format=QuantFormat.QOperator)
    qlinear = [(r.params, r.macs) for r in graph_layers(qop) if r.op_type == "QLinearConv"]
    assert qlinear == [(224, 13_824), (80, 4_608), (72, 4_096)]  # the FP32 convs' own


def test_macs_per_image_at_a_fixed_batch_of_two(tmp_path):
    """Before: at a fixed batch of 2, each MatMul and the Gemm counted two images, each Conv
    one (170,144 MACs). After: one image everywhere, the dynamic export's 96,336."""
    from alexnet_deploy.graph_summary import graph_layers

    fixed = graph_layers(_tinyres(tmp_path / "fixed.onnx", batch=2))
    dynamic = graph_layers(_tinyres(tmp_path / "dynamic.onnx"))
    assert read_artifact(tmp_path / "fixed.onnx").fixed_batch == 2
    assert [(r.op_type, r.macs, r.real_macs) for r in fixed if r.macs] == [
        (r.op_type, r.macs, r.real_macs) for r in dynamic if r.macs
    ]
    assert sum(r.macs for r in fixed) == 96_336


# 4. the OpenCV host placement follows the card's interpolation


@pytest.mark.parametrize(
    ("interpolation", "input_size", "bound"),
    [("nearest", 32, 0.5), ("nearest", 600, 0.5), ("bicubic", 600, 0.8), ("bicubic", 32, 3.0)],
)
def test_opencv_resizes_with_the_card_s_filter(interpolation, input_size, bound):
    """Mean pixel levels off (scale 1, mean 0, std 1) of the OpenCV placement against the
    host's Pillow resize, after the crop, on cat.jpg and coins.png. Before: INTER_AREA reducing
    and INTER_LINEAR enlarging whatever the card said: nearest reduced 8.5 and 11.5, enlarged 3.0
    and 3.7; bicubic enlarged 1.0 and 1.3. After: INTER_NEAREST_EXACT 0.3 at most; INTER_CUBIC
    0.5 and 0.7. A bicubic reduction stays on INTER_AREA (1.5 and 2.5): INTER_CUBIC, which does
    not antialias as Pillow does, is 8.6 and 12.3 off."""
    from alexnet_deploy.bench.host_opencv import opencv_preprocess
    from alexnet_deploy.calib.images import load_rgb, preprocess
    from alexnet_deploy.modelcard import ModelCard

    pre = ModelCard.from_preset(
        "raw255", name="m", input_size=input_size, interpolation=interpolation,
        mean=(0.0, 0.0, 0.0), channel_order="RGB",
    ).preprocessing()  # fmt: skip
    for name in ("cat.jpg", "coins.png"):
        image = load_rgb(SHIPPED / name)
        levels = np.abs(opencv_preprocess(np.asarray(image), pre)[0] - preprocess(image, pre))
        assert levels.mean() < bound, (name, levels.mean())


# 5./6. export --from: a module spec rebuilt from another folder; forward(x, *args)


MODULE = """
from torch import nn


class Pooled(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Linear(4, {classes})

    def forward(self, x{extra}):
        return self.head(self.conv(x).relu().mean((2, 3)))


def make():
    return Pooled()
"""


@pytest.fixture
def package(tmp_path):
    """ROOT/revpkg/nets.py: a package importable from ROOT only; its modules are dropped from
    sys.modules after the test (another run of the tool is another process)."""
    root = tmp_path / "root"
    (root / "revpkg").mkdir(parents=True)
    (root / "revpkg" / "__init__.py").write_text("")
    (root / "revpkg" / "nets.py").write_text(MODULE.format(classes=5, extra=""))
    yield root
    for name in [n for n in sys.modules if n == "revpkg" or n.startswith("revpkg.")]:
        del sys.modules[name]


def _forget(package_name: str) -> None:
    for name in [n for n in sys.modules if n.split(".")[0] == package_name]:
        del sys.modules[name]


def test_a_module_spec_export_is_rebuilt_from_another_folder(cli, package, tmp_path, monkeypatch):
    """Before: build --backend torch, run anywhere but the export's folder, said "module
    'revpkg.nets' not found"; it imported the spec from the current directory."""
    from alexnet_deploy import api
    from alexnet_deploy.engines.registry import get_backend
    monkeypatch.chdir(package)
    out = tmp_path / "m.onnx"
    result = cli("export", "--from", "revpkg.nets:make", "--input-size", "16", "-o", out)
    assert result.exit_code == 0, result.stderr
    _forget("revpkg")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    engine, _ = api.build(out, "torch", work_dir=tmp_path / "work")
    images = np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)
    with get_backend("torch").runner(engine) as runner:
        logits = runner.infer(images)
    import onnxruntime as ort

    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: images})[0]
    np.testing.assert_allclose(logits, expected, atol=1e-5)
    assert sys.modules["revpkg.nets"].__file__ == str(package / "revpkg" / "nets.py")
    assert read_artifact(out).metadata["from_root"] == str(package.resolve())


def test_another_module_of_the_same_name_is_refused(cli, package, tmp_path, monkeypatch):
    """Before: a revpkg.nets imported from elsewhere (here, a 3-class one) was taken for the
    exported one; the recorded file was unchanged, so the torch backend built another model."""
    from alexnet_deploy import api

    monkeypatch.chdir(package)
    out = tmp_path / "m.onnx"
    assert cli("export", "--from", "revpkg.nets:make", "--input-size", "16", "-o", out).exit_code == 0
    _forget("revpkg")
    other = tmp_path / "other"
    (other / "revpkg").mkdir(parents=True)
    (other / "revpkg" / "__init__.py").write_text("")
    (other / "revpkg" / "nets.py").write_text(MODULE.format(classes=3, extra=""))
    monkeypatch.syspath_prepend(str(other))
    import revpkg.nets  # noqa: F401 - the other one, imported first

    monkeypatch.chdir(tmp_path)
    with pytest.raises(AlexnetDeployError, match="^--from module 'revpkg.nets' is imported from"):
        api.build(out, "torch", work_dir=tmp_path / "work")
    result = cli("build", out, "--backend", "torch", "--work-dir", tmp_path / "work")
    assert_clean_failure(result, 1, f"{other}/revpkg/nets.py here, not from under {package}")


def test_forward_with_extra_positional_and_keyword_arguments_exports(cli, tmp_path):
    """Before: forward(self, x, *args, **kwargs) was refused as "takes 2 inputs (x, args)"."""
    source = tmp_path / "pooled.py"
    source.write_text(MODULE.format(classes=5, extra=", *args, **kwargs"))
    out = tmp_path / "m.onnx"
    result = cli("export", "--from", f"{source}:make", "--input-size", "16", "-o", out)
    assert result.exit_code == 0, result.stderr
    assert read_artifact(out).card().num_classes == 5


# the card's mean/std message; a torch module without parameters


def test_mean_and_std_are_in_the_model_s_channel_order():
    """Before: "three finite numbers (R,G,B)", for a BGR model too."""
    from alexnet_deploy.modelcard import ModelCard

    with pytest.raises(UsageError, match=r"one per channel in the model's channel order \(BGR\)"):
        ModelCard.from_preset("raw255", name="m", mean=(1.0, 2.0))


def test_a_torch_module_without_parameters_computes_in_its_input_s_dtype():
    """Before: StopIteration (next() of an empty parameter iterator) in the row's
    computed-in, and in the torch backend's forward."""
    from alexnet_deploy.engines.computed import torch_computed
    from alexnet_deploy.engines.torch_backend import forward

    pooled = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()).eval()
    computed = torch_computed(pooled)
    assert computed.precision == "fp32" and "no weights" in computed.source
    batch = np.random.default_rng(0).random((2, 3, 8, 8), dtype=np.float32)
    np.testing.assert_allclose(forward(pooled, batch, False), batch.mean((2, 3)), rtol=1e-6)
    assert torch_computed(torch.nn.Linear(2, 2).to(torch.bfloat16)).precision == "bf16"
