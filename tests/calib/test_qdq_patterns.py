"""Q/DQ placement in the patterns real networks have (issue #23, item 4): a residual block
with BatchNorm, a depthwise + squeeze-excitation + HardSwish block with a grouped conv, an
Inception-style Concat and a transformer block. Each tiny network is built with PyTorch,
exported to ONNX, calibrated by the real pipeline and quantized by ONNX Runtime; the placement
is read back from the INT8 graph and each INT8 model runs in ONNX Runtime against FP32."""

from __future__ import annotations

import json
import warnings

import numpy as np
import onnx
import pytest
import torch
import torch.nn.functional as F
from onnx import numpy_helper
from torch import nn

from alexnet_deploy.calib.fidelity import ort_logits
from alexnet_deploy.calib.float_report import RESIDUAL_FUSED, SE_GATE
from alexnet_deploy.calib.pipeline import calibrate
from alexnet_deploy.calib.placement import fold_batchnorm
from alexnet_deploy.calib.stage import DataRequest
from alexnet_deploy.calib.tensorrt_check import check_tensorrt_qdq

SIZE = 32
MIN_COSINE = 0.98  # INT8 logits against FP32 on the same inputs (8-bit noise on tiny nets)


class Residual(nn.Module):
    """ResNet basic block (identity shortcut) and a downsampling block (1x1 conv shortcut)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU()
        )
        self.conv1 = nn.Sequential(
            nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU()
        )
        self.conv2 = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8))
        self.down_main = nn.Sequential(
            nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16),
        )  # fmt: skip
        self.down_skip = nn.Sequential(
            nn.Conv2d(8, 16, 1, stride=2, bias=False), nn.BatchNorm2d(16)
        )
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        x = self.stem(x)
        x = F.relu(self.conv2(self.conv1(x)) + x)
        x = F.relu(self.down_main(x) + self.down_skip(x))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class MobileSE(nn.Module):
    """MobileNetV3-style: depthwise conv, HardSwish, squeeze-excitation, a grouped conv."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.Hardswish()
        )
        self.dw = nn.Sequential(
            nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), nn.BatchNorm2d(8), nn.Hardswish()
        )
        self.se_reduce = nn.Conv2d(8, 4, 1)
        self.se_expand = nn.Conv2d(4, 8, 1)
        self.grouped = nn.Sequential(
            nn.Conv2d(8, 16, 3, padding=1, groups=2, bias=False), nn.BatchNorm2d(16), nn.ReLU()
        )
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        x = self.dw(self.stem(x))
        gate = F.hardsigmoid(self.se_expand(F.relu(self.se_reduce(F.adaptive_avg_pool2d(x, 1)))))
        x = self.grouped(x * gate)
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class Inception(nn.Module):
    """Two branches concatenated along channels, then a 1x1 conv."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.a = nn.Sequential(nn.Conv2d(8, 4, 1), nn.ReLU())
        self.b = nn.Sequential(nn.Conv2d(8, 4, 3, padding=1), nn.ReLU())
        self.mix = nn.Sequential(nn.Conv2d(8, 8, 1), nn.ReLU())
        self.head = nn.Linear(8, 10)

    def forward(self, x):
        x = self.stem(x)
        x = self.mix(torch.cat([self.a(x), self.b(x)], 1))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class Transformer(nn.Module):
    """ViT-style: patch embedding, pre-norm attention and MLP (exact GELU), mean pooling."""

    def __init__(self, dim: int = 16, heads: int = 2) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, dim, 8, stride=8)
        self.ln1, self.ln2, self.ln3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.fc1, self.fc2 = nn.Linear(dim, 2 * dim), nn.Linear(2 * dim, dim)
        self.head, self.heads = nn.Linear(dim, 10), heads

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        b, n, d = x.shape
        qkv = self.qkv(self.ln1(x)).reshape(b, n, 3, self.heads, d // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        attn = torch.softmax(q @ k.transpose(-2, -1) * (d // self.heads) ** -0.5, dim=-1)
        x = x + self.proj((attn @ v).transpose(1, 2).reshape(b, n, d))
        x = x + self.fc2(F.gelu(self.fc1(self.ln2(x))))
        return self.head(self.ln3(x).mean(1))


def _built(cls) -> nn.Module:
    """Seeded weights, and BatchNorm statistics that are not the identity (so folding them
    changes the weights)."""
    torch.manual_seed(0)
    model = cls().eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    return model


def _export(model: nn.Module, path, *, keep_batchnorm: bool = False, opset: int = 18):
    """The dynamo exporter (what 'export' uses) folds BatchNorm itself; the TorchScript
    exporter without constant folding leaves BatchNormalization nodes, as other exporters do."""
    example = torch.zeros(2, 3, SIZE, SIZE)
    if keep_batchnorm:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "You are using the legacy", DeprecationWarning)
            torch.onnx.export(
                model, (example,), str(path), input_names=["input"], output_names=["logits"],
                dynamic_axes={"input": {0: "batch"}}, opset_version=opset, dynamo=False,
                do_constant_folding=False,
            )  # fmt: skip
        return path
    program = torch.onnx.export(
        model, (example,), input_names=["input"], output_names=["logits"],
        dynamic_shapes=({0: torch.export.Dim("batch", min=1)},), opset_version=opset, dynamo=True,
    )  # fmt: skip
    program.save(str(path))
    return path


def _calibrated(tmp_path_factory, name: str, cls, *, keep_batchnorm: bool = False) -> dict:
    root = tmp_path_factory.mktemp(name)
    model = _export(_built(cls), root / f"{name}.onnx", keep_batchnorm=keep_batchnorm)
    request = DataRequest(data="synthetic", calib_size=32, eval_size=32)
    report = calibrate(model, request, targets=("tensorrt", "cpu"))
    return {
        "fp32": model,
        "report": report,
        "json": json.loads(report.report_path.read_text()),
        **{t: onnx.load(str(p)) for t, p in report.artifacts.items()},
        "paths": report.artifacts,
    }


@pytest.fixture(scope="module")
def residual(tmp_path_factory):
    return _calibrated(tmp_path_factory, "residual", Residual, keep_batchnorm=True)


@pytest.fixture(scope="module")
def mobile(tmp_path_factory):
    return _calibrated(tmp_path_factory, "mobile", MobileSE)


@pytest.fixture(scope="module")
def inception(tmp_path_factory):
    return _calibrated(tmp_path_factory, "inception", Inception)


@pytest.fixture(scope="module")
def transformer(tmp_path_factory):
    return _calibrated(tmp_path_factory, "transformer", Transformer)


class _Read:
    """The INT8 graph as the tests ask about it."""

    def __init__(self, model) -> None:
        self.nodes = list(model.graph.node)
        self.inits = {i.name: i for i in model.graph.initializer}
        self.producer = {o: n for n in self.nodes for o in n.output}

    def of(self, op_type: str) -> list:
        return [n for n in self.nodes if n.op_type == op_type]

    def dequantized(self, name: str) -> bool:
        node = self.producer.get(name)
        return node is not None and node.op_type == "DequantizeLinear"

    def float_source(self, name: str):
        """The node computing ``name`` (through a Q -> DQ pair)."""
        node = self.producer.get(name)
        if node is not None and node.op_type == "DequantizeLinear":
            node = self.producer.get(self.producer[node.input[0]].input[0])
        return node

    def weight_dq(self, node):
        """The DequantizeLinear of a weighted node's weight (input 1)."""
        dq = self.producer[node.input[1]]
        assert dq.op_type == "DequantizeLinear" and dq.input[0] in self.inits
        return dq

    def scales(self, dq) -> np.ndarray:
        return numpy_helper.to_array(self.inits[dq.input[1]])


def _cosine(fp32_path, int8_path) -> float:
    x = np.random.default_rng(1).random((16, 3, SIZE, SIZE), dtype=np.float32)  # as calibrated
    a, b = ort_logits(fp32_path, "input", x, 8), ort_logits(int8_path, "input", x, 8)
    return float(
        np.mean(np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)))
    )


def _axis(dq) -> int:
    return next((a.i for a in dq.attribute if a.name == "axis"), 1)


def _floats(calibrated, target: str) -> list[dict]:
    return calibrated["json"]["float_tensors"][target]


def test_batchnorm_is_folded_before_quantization(residual):
    fp32 = onnx.load(str(residual["fp32"]))
    assert any(n.op_type == "BatchNormalization" for n in fp32.graph.node)  # the export left it
    for target in ("tensorrt", "cpu"):
        graph = _Read(residual[target])
        assert not graph.of("BatchNormalization"), target
        for conv in graph.of("Conv"):  # every folded conv still has quantized weights
            graph.weight_dq(conv)


def test_fold_batchnorm_keeps_the_function(tmp_path):
    path = _export(_built(Residual), tmp_path / "bn.onnx", keep_batchnorm=True)
    model = onnx.load(str(path))
    folded = fold_batchnorm(model)
    assert len(folded) == 6 and not any(n.op_type == "BatchNormalization" for n in model.graph.node)
    onnx.save(model, str(tmp_path / "folded.onnx"))
    x = np.random.default_rng(2).standard_normal((4, 3, SIZE, SIZE)).astype(np.float32)
    np.testing.assert_allclose(
        ort_logits(tmp_path / "folded.onnx", "input", x, 4),
        ort_logits(path, "input", x, 4),
        rtol=1e-4, atol=1e-5,
    )  # fmt: skip


def test_residual_add_quantizes_only_the_identity_for_tensorrt(residual):
    graph = _Read(residual["tensorrt"])
    adds = [a for a in graph.of("Add") if all(i not in graph.inits for i in a.input)]
    assert len(adds) == 2
    for add in adds:
        quantized = [graph.dequantized(i) for i in add.input]
        assert sorted(quantized) == [False, True], add.name  # exactly one input through DQ
        fused = add.input[quantized.index(False)]
        assert graph.producer[fused].op_type == "Conv"  # the conv's output, left to fusion
    check_tensorrt_qdq(residual["tensorrt"])  # every DQ feeds an op TensorRT fuses with
    reasons = {(e["node"], e["reason"]) for e in _floats(residual, "tensorrt")}
    assert {(a.name, RESIDUAL_FUSED) for a in adds} <= reasons


def test_downsampling_block_fuses_the_main_path(residual):
    """Both inputs of the second Add are conv outputs: the deeper (main path) one is fused, the
    1x1 shortcut conv's output is quantized (pytorch-quantization's residual_quantizer)."""
    graph = _Read(residual["tensorrt"])
    add = [a for a in graph.of("Add") if all(i not in graph.inits for i in a.input)][-1]
    shortcut = graph.float_source(next(i for i in add.input if graph.dequantized(i)))
    assert shortcut.op_type == "Conv"
    kernel = numpy_helper.to_array(graph.inits[graph.weight_dq(shortcut).input[0]]).shape
    assert kernel[-2:] == (1, 1)


def test_depthwise_and_grouped_weights_are_per_channel_on_axis_0(mobile):
    for target in ("tensorrt", "cpu"):
        graph = _Read(mobile[target])
        grouped = [
            c for c in graph.of("Conv")
            if next((a.i for a in c.attribute if a.name == "group"), 1) > 1
        ]  # fmt: skip
        assert len(grouped) == 2, target  # the depthwise conv (groups=8) and groups=2
        for conv in grouped:
            dq = graph.weight_dq(conv)
            out_channels = graph.inits[dq.input[0]].dims[0]
            assert _axis(dq) == 0 and graph.scales(dq).shape == (out_channels,), (target, conv.name)


def test_squeeze_excitation_and_hardswish_stay_float_for_tensorrt(mobile):
    graph = _Read(mobile["tensorrt"])
    (gate_mul,) = [m for m in graph.of("Mul") if all(i not in graph.inits for i in m.input)]
    assert not any(graph.dequantized(i) for i in gate_mul.input)
    for act in graph.of("HardSwish") + graph.of("HardSigmoid"):
        assert not graph.dequantized(act.input[0])  # computed on the conv's float output
    # the SE's 1x1 convs read the pooled features through Q/DQ
    pooled = {n.output[0] for n in graph.of("ReduceMean")}
    se_convs = [
        c for c in graph.of("Conv")
        if (s := graph.float_source(c.input[0])) is not None and s.output[0] in pooled
    ]  # fmt: skip
    assert se_convs and all(graph.dequantized(c.input[0]) for c in se_convs)
    reasons = {e["op_type"]: e["reason"] for e in _floats(mobile, "tensorrt")}
    assert reasons["Mul"] == SE_GATE
    assert "HardSwish" in reasons and "ReduceMean" in reasons


def test_concat_has_one_qdq_after_it_for_tensorrt(inception):
    graph = _Read(inception["tensorrt"])
    (concat,) = graph.of("Concat")
    assert not any(graph.dequantized(i) for i in concat.input)
    quantizers = [q for q in graph.of("QuantizeLinear") if q.input[0] == concat.output[0]]
    assert len(quantizers) == 1
    assert any(e["op_type"] == "Concat" for e in _floats(inception, "tensorrt"))


def test_transformer_keeps_layernorm_gelu_softmax_float(transformer):
    for target in ("tensorrt", "cpu"):
        graph = _Read(transformer[target])
        kept = graph.of("LayerNormalization") + graph.of("Softmax") + graph.of("Erf")
        assert len(kept) == 3 + 1 + 1
        for node in kept:  # computed in float: no DQ in front of them
            assert not any(graph.dequantized(i) for i in node.input), (target, node.name)
        # the Softmax's probabilities and the GELU's output stay float; a LayerNorm's output
        # is quantized only where a weighted MatMul reads it
        quantized = {q.input[0] for q in graph.of("QuantizeLinear")}
        for node in graph.of("Softmax") + graph.of("Erf"):
            assert node.output[0] not in quantized, (target, node.name)
        weighted = [m for m in graph.of("MatMul") if graph.dequantized(m.input[1])]
        assert len(weighted) == 4, target  # qkv, proj, fc1, fc2 quantized
        assert all(graph.dequantized(m.input[0]) for m in weighted), target
        attention = [m for m in graph.of("MatMul") if m not in weighted]
        assert len(attention) == 2 and not any(
            graph.dequantized(i) for m in attention for i in m.input
        )
        (softmax,) = graph.of("Softmax")
        scale = graph.producer[softmax.input[0]]  # the 1/sqrt(d) scale of the scores
        assert scale.op_type == "Mul" and not any(graph.dequantized(i) for i in scale.input)
    reasons = {e["op_type"]: e["reason"] for e in _floats(transformer, "tensorrt")}
    assert reasons["LayerNormalization"] == "LayerNorm kept float (NVIDIA guidance)"
    assert "Softmax" in reasons["Softmax"] and "GELU" in reasons["Erf"]


def test_gelu_op_stays_float(tmp_path):
    """At opset 20 the exporter writes GELU as one Gelu op instead of the Erf form."""
    model = _export(_built(Transformer), tmp_path / "gelu.onnx", opset=20)
    request = DataRequest(data="synthetic", calib_size=16, eval_size=16)
    report = calibrate(model, request, targets=("tensorrt", "cpu"))
    for target, path in report.artifacts.items():
        graph = _Read(onnx.load(str(path)))
        (gelu,) = graph.of("Gelu")
        assert not graph.dequantized(gelu.input[0]), target
        reasons = {e["op_type"]: e["reason"] for e in report.float_tensors[target]}
        assert reasons["Gelu"] == "GELU kept float (NVIDIA guidance)", target
        assert _cosine(model, path) >= MIN_COSINE, target


@pytest.mark.parametrize("name", ["residual", "mobile", "inception", "transformer"])
def test_int8_models_run_close_to_fp32(name, request):
    calibrated = request.getfixturevalue(name)
    for target, path in calibrated["paths"].items():
        assert _cosine(calibrated["fp32"], path) >= MIN_COSINE, (name, target)


def test_report_lists_float_tensors_with_reasons(transformer):
    entries = _floats(transformer, "tensorrt")
    assert entries and all(set(e) == {"tensor", "node", "op_type", "reason"} for e in entries)
    assert all(e["reason"] for e in entries)
    assert set(transformer["json"]["float_tensors"]) == {"tensorrt", "cpu"}
    assert transformer["report"].float_tensors["tensorrt"] == entries


def test_calibrate_prints_what_stays_float(transformer, cli, tmp_path):
    result = cli(
        "calibrate", transformer["fp32"], "--data", "synthetic", "--calib-size", "16",
        "--eval-size", "16", "--target", "tensorrt", "-o", tmp_path / "t.onnx",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "tensorrt float: 3 x LayerNorm kept float (NVIDIA guidance)" in result.stdout
    assert "tensorrt float: 1 x Softmax kept float (NVIDIA guidance)" in result.stdout
