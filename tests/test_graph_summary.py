"""``summary MODEL.onnx``: the per-layer table of any ONNX model from its own graph, the MACs the
roofline and the planner use, and every output naming the model (issue #23, items 3 and 6).

Real models only: the AlexNet exports of the session, a tiny ResNet-style network with an
attention block built and exported here by PyTorch, a foreign CNN without metadata, and an INT8
Q/DQ model made by ONNX Runtime's quantizer."""

from __future__ import annotations

import importlib.util
import json
import math
import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from alexnet_deploy import constants as C
from alexnet_deploy.graph_summary import graph_layers
from tests.test_faults import assert_clean_failure

SIZE = 8  # the tiny network's input: 3 x 8 x 8


class TinyRes(nn.Module):
    """conv + BatchNorm (folded by the exporter) -> a residual block with a depthwise conv ->
    one attention step over the 64 positions (two batched MatMuls with activations on both
    sides) -> global average pool -> linear."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pw = nn.Conv2d(8, 8, 1)
        self.q = nn.Linear(8, 8)
        self.k = nn.Linear(8, 8)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn(self.stem(x)))
        y = y + self.pw(torch.relu(self.dw(y)))
        b, c, h, w = y.shape
        t = y.flatten(2).transpose(1, 2)  # [b, 64, 8]
        scores = self.q(t) @ self.k(t).transpose(1, 2) / math.sqrt(c)
        t = t + torch.softmax(scores, dim=-1) @ t
        return self.fc(torch.flatten(self.pool(t.transpose(1, 2).reshape(b, c, h, w)), 1))


def _export_tinyres(path: Path, name: str | None = None) -> Path:
    """TinyRes exported with a dynamic batch (seeded; BatchNorm given real statistics so that
    folding it changes the conv); ``name``: the model card's ``model_name``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = TinyRes()
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
        model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            model, (torch.zeros(2, 3, SIZE, SIZE),), str(path), input_names=["x"],
            output_names=["logits"], dynamic_axes={"x": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17, dynamo=False,
        )  # fmt: skip
    if name is not None:
        proto = onnx.load(str(path))
        onnx.helper.set_model_props(proto, {f"{C.METADATA_PREFIX}model_name": name})
        onnx.save(proto, str(path))
    return path


def _summary(cli, model: Path) -> tuple[list[dict], dict]:
    result = cli("summary", model, "--format", "json")
    assert result.exit_code == 0, result.stderr
    rows = json.loads(result.stdout)
    return rows[:-1], rows[-1]


@pytest.mark.parametrize("variant", ["torchvision", "paper"])
def test_summary_of_an_alexnet_export_equals_the_pytorch_summary(cli, exported, variant):
    """The graph's count and the PyTorch-side count (forward hooks) of the same network agree
    exactly: 61,100,840 / 60,965,224 parameters, and every MAC."""
    from alexnet_deploy.bench.roofline import macs_by_node
    from alexnet_deploy.models.summary import layer_table
    from alexnet_deploy.models.variants import VARIANTS

    model = exported(variant).path
    rows, total = _summary(cli, model)
    torch_total = layer_table(VARIANTS[variant]).row(-1, named=True)
    assert total["layer"] == "total" and total["params"] == VARIANTS[variant].num_params
    assert (total["params"], total["macs"]) == (torch_total["params"], torch_total["macs"])
    convs = [r for r in rows if r["type"] == "Conv"]
    gemms = [r for r in rows if r["type"] == "Gemm"]
    assert (len(convs), len(gemms)) == (5, 3)
    assert convs[0]["output"] == ("64x55x55" if variant == "torchvision" else "96x55x55")
    # the roofline's count: the same layers, the zero-padding taps left out of the convs only
    real = macs_by_node(model)
    by_name = {r["layer"]: r["macs"] for r in rows if r["macs"]}
    assert real.keys() == by_name.keys()
    assert all(real[g["layer"]] == g["macs"] for g in gemms)
    assert all(real[c["layer"]] < c["macs"] for c in convs[1:])  # padded: fewer real taps


def test_summary_counts_a_resnet_block_with_attention_by_hand(cli, tmp_path):
    """Every MAC and parameter of TinyRes at 3 x 8 x 8, by hand:
    stem 3->8 3x3 (BatchNorm folded into weight and bias): 8*8*8 outputs x 27 = 13,824 MACs,
    216 + 8 parameters; depthwise 3x3 (groups 8): 512 x 9 = 4,608, 72 + 8; pointwise 1x1:
    512 x 8 = 4,096, 64 + 8; q and k (MatMul [64,8] x [8,8], bias in an Add): 4,096 each, 64 + 8
    each; scores (MatMul [64,8] x [8,64], activations both sides): 32,768; weights x values
    ([64,64] x [64,8]): 32,768; fc (Gemm 8->10): 80, 80 + 10. The 1/sqrt(8) scale is a
    constant, not a parameter. Totals: 96,336 MACs and 610 parameters."""
    model = _export_tinyres(tmp_path / "tinyres.onnx")
    rows, total = _summary(cli, model)
    assert (total["macs"], total["params"]) == (96_336, 610)
    kinds = [r["type"] for r in rows]
    assert "BatchNormalization" not in kinds and kinds.count("Add") == 4  # residual, 2 biases, attention
    macs = [(r["type"], r["macs"]) for r in rows if r["macs"]]
    assert macs == [
        ("Conv", 13_824), ("Conv", 4_608), ("Conv", 4_096), ("MatMul", 4_096),
        ("MatMul", 4_096), ("MatMul", 32_768), ("MatMul", 32_768), ("Gemm", 80),
    ]  # fmt: skip
    params = {r["layer"]: r["params"] for r in rows if r["params"]}
    assert sorted(params.values()) == [8, 8, 64, 64, 72, 80, 90, 224]
    shapes = {r["type"]: r["output"] for r in rows}
    assert shapes["GlobalAveragePool"] == "8x1x1" and shapes["Softmax"] == "64x64"
    # the roofline's per-image count for the same graph: padding taps out of the 3x3 convs
    # (a 3x3, padding 1, on 8x8 lands 8*8*9 - 4*(3*8) + 4 = 484 taps per channel pair)
    from alexnet_deploy.bench.roofline import macs_per_image

    assert macs_per_image(model) == 96_336 - (13_824 + 4_608) + 8 * 3 * 484 + 8 * 484


def test_an_int8_qdq_model_counts_each_weight_once(tmp_path):
    """ONNX Runtime's Q/DQ model of TinyRes: every weight behind DequantizeLinear (int8
    weights, int32 biases) is counted once at its layer, scales and zero points are not
    parameters, and the MACs are the FP32 model's."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, quantize_static

    fp32 = _export_tinyres(tmp_path / "tinyres.onnx")

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            self.batches = iter(
                [{"x": rng.standard_normal((1, 3, SIZE, SIZE), np.float32)} for _ in range(4)]
            )

        def get_next(self):
            return next(self.batches, None)

    int8 = tmp_path / "tinyres.int8.onnx"
    quantize_static(str(fp32), str(int8), Reader(), quant_format=QuantFormat.QDQ)
    ops = {n.op_type for n in onnx.load(str(int8)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    base, quantized = graph_layers(fp32), graph_layers(int8)
    assert sum(x.params for x in quantized) == sum(x.params for x in base) == 610
    assert sum(x.macs for x in quantized) == sum(x.macs for x in base) == 96_336
    assert not {x.op_type for x in quantized} & {"QuantizeLinear", "DequantizeLinear"}


def test_a_foreign_model_without_metadata_gets_a_summary(cli, tmp_path):
    """A CNN exported by PyTorch with no alexnet-deploy metadata: its table, named after its
    file: conv 3->8 3x3 on 16x16 (16*16*8 x 27 = 55,296 MACs, 224 parameters), linear 8->10."""
    from tests.foreign_models import export

    model = export(tmp_path / "foreign.onnx")
    result = cli("summary", model)
    assert result.exit_code == 0, result.stderr
    assert "foreign (foreign.onnx" in result.stdout
    _, total = _summary(cli, model)
    assert (total["macs"], total["params"]) == (55_296 + 80, 224 + 90)


def test_summary_refuses_a_model_and_a_variant_and_a_file_that_is_not_onnx(cli, tmp_path):
    from tests.foreign_models import export

    model = export(tmp_path / "foreign.onnx")
    assert_clean_failure(cli("summary", model, "--variant", "paper"), 2, "not both")
    junk = tmp_path / "notes.onnx"
    junk.write_text("not a model")
    assert_clean_failure(cli("summary", junk), 1, "is not an ONNX model")
    # the built-in variant's table still needs no file
    result = cli("summary", "--variant", "paper", "--format", "csv")
    assert result.exit_code == 0 and "60965224" in result.stdout


@pytest.mark.skipif(
    importlib.util.find_spec("tritonclient") is None,
    reason="tritonclient is not installed (pip install 'alexnet-deploy[triton]')",
)
def test_package_names_the_triton_model_after_the_model(cli, tmp_path):
    """A model whose card names it "tinyres": its Triton model, directory and config are
    tinyres_fp32_onnx, never alexnet_*."""
    from alexnet_deploy.serve.triton_config import parse_config

    model = _export_tinyres(tmp_path / "u.onnx", "tinyres")
    repo = tmp_path / "repo"
    result = cli(
        "package", "--triton", repo, "--model", model, "--no-openvino", "--work-dir",
        tmp_path / "work",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    names = sorted(p.name for p in repo.iterdir() if p.is_dir())
    assert names == ["tinyres_fp32_onnx"]
    config = parse_config((repo / "tinyres_fp32_onnx" / "config.pbtxt").read_text())
    assert config.name == "tinyres_fp32_onnx"
    assert "alexnet" not in result.stdout.lower().replace("alexnet-deploy", "")


def test_bench_report_names_the_model(cli, tmp_path):
    """bench of the "tinyres" model: the terminal title, the JSON (report and every row), the
    CSV's first column, the Markdown heading and the plot's title all name it; a gate of its
    report against a baseline of another model is refused (two models never compare)."""
    model = _export_tinyres(tmp_path / "u.onnx", "tinyres")
    out = tmp_path / "report"
    result = cli(
        "bench", "--model", model, "--backend", "ort", "--precision", "fp32", "--batch", "1",
        "--data", "synthetic", "--min-iterations", "20", "--min-seconds", "0.05",
        "--max-seconds", "0.2", "--no-roofline", "--no-direct", "--out", out,
        "--work-dir", tmp_path / "work",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "bench of tinyres" in result.stdout
    report = json.loads((out / "bench-summary.json").read_text())
    assert report["model"]["name"] == "tinyres"
    assert {row["model"] for row in report["rows"]} == {"tinyres"}
    assert (out / "bench-summary.csv").read_text().startswith("model,")
    assert (out / "bench-summary.md").read_text().startswith("# alexnet-deploy bench of tinyres")
    # another model's baseline: same environment, same configuration, another name
    other = tmp_path / "other"
    other.mkdir()
    report["model"]["name"] = "resnet50"
    (other / "bench-summary.json").write_text(json.dumps(report))
    for name in ("bench-samples.parquet",):
        (other / name).write_bytes((out / name).read_bytes())
    assert_clean_failure(cli("gate", other, out), 2, "different models never compare")
