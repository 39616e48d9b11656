"""compare and plan on a deep network (issue #23, item 5): 61 convolutions (12 named blocks of
five, depthwise and grouped ones among them, behind a stem) and a linear head, built here in
PyTorch at a tiny width, trained for a moment on the digit PNGs, exported by PyTorch's
TorchScript exporter (node names such as ``/blocks/blocks.3/expand/Conv``) and calibrated by
the real pipeline. Layers are found and named from the ONNX graph and grouped by block; the
greedy search is bounded and says what it skipped; --exhaustive is refused with its count."""

from __future__ import annotations

import json
import warnings

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from alexnet_deploy.onnx_model import read_artifact
from alexnet_deploy.precision.plans import Plan, weight_layers
from alexnet_deploy.precision.search import candidate_plans

BLOCKS = 12
WIDTH = 8
SIZE = 32  # the digits' crop (tests/digits.py: 36-pixel PNGs, centre crop 32)


class DeepBlock(nn.Module):
    """Five convolutions with two residual adds: expand 1x1, depthwise 3x3, project 1x1, a
    grouped 3x3 and a 1x1, HardSwish between (an activation the quantizer does not fold, so
    each convolution keeps a tensor of its own)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.expand = nn.Conv2d(width, 2 * width, 1)
        self.depthwise = nn.Conv2d(2 * width, 2 * width, 3, padding=1, groups=2 * width)
        self.project = nn.Conv2d(2 * width, width, 1)
        self.grouped = nn.Conv2d(width, width, 3, padding=1, groups=2)
        self.mix = nn.Conv2d(width, width, 1)
        self.act = nn.Hardswish()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x + self.project(self.act(self.depthwise(self.act(self.expand(x)))))
        return y + self.mix(self.act(self.grouped(y)))


class DeepNet(nn.Module):
    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, WIDTH, 3, stride=4, padding=1)
        self.blocks = nn.Sequential(*(DeepBlock(WIDTH) for _ in range(BLOCKS)))
        self.fc = nn.Linear(WIDTH, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.blocks(self.stem(x)).mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def deep(digits, tmp_path_factory):
    """The deep network trained for two epochs on the digit PNGs (decoded by Pillow with the
    digits' preprocessing), exported with a dynamic batch and its model card in the metadata."""
    from alexnet_deploy.calib.stage import write_artifact_metadata
    from tests.digits import DIGITS, _arrays

    images, labels = _arrays(digits["train_dir"])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = DeepNet()
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
        x, y = torch.from_numpy(images), torch.from_numpy(labels)
        model.train()
        for _ in range(2):
            for index in torch.randperm(len(x)).split(64):
                optimizer.zero_grad()
                nn.functional.cross_entropy(model(x[index]), y[index]).backward()
                optimizer.step()
    model.eval()
    path = tmp_path_factory.mktemp("deep") / "deep-blocks.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            model, (torch.zeros(2, 3, SIZE, SIZE),), str(path), input_names=["input"],
            output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17, dynamo=False,
        )  # fmt: skip
    proto = onnx.load(str(path))
    pre = DIGITS.preprocessing
    write_artifact_metadata(
        proto,
        {
            "model_name": "deep-blocks",
            "input_size": str(pre.crop_size),
            "resize_size": str(pre.resize_size),
            "mean": json.dumps(list(pre.mean)),
            "std": json.dumps(list(pre.std)),
            "num_classes": "10",
            "precision": "fp32",
        },
    )
    onnx.save(proto, str(path))
    return path


def _weight_nodes(path) -> list[str]:
    return [n.name for n in onnx.load(str(path)).graph.node if n.op_type in ("Conv", "Gemm")]


def test_weight_layers_are_named_by_node_and_grouped_by_block(deep):
    layers = weight_layers(deep)
    assert [x.node for x in layers] == _weight_nodes(deep) and len(layers) == 5 * BLOCKS + 2
    blocks = {}
    for x in layers:
        blocks.setdefault(x.block, []).append(x.node)
    assert blocks.pop("stem") == ["/stem/Conv"] and blocks.pop("fc") == ["/fc/Gemm"]
    assert sorted(blocks) == sorted(f"blocks.{k}" for k in range(BLOCKS))
    assert blocks["blocks.3"] == [
        f"/blocks/blocks.3/{name}/Conv"
        for name in ("expand", "depthwise", "project", "grouped", "mix")
    ]
    assert all(x.macs > 0 for x in layers)
    # a greedy step keeps a whole block float: one plan per block, each adding one
    order = [x.name for x in reversed(layers)]
    plans = candidate_plans(layers, order, frozenset(), exhaustive=False, by_block=True)
    assert len(plans) == BLOCKS + 3 and plans[0] == Plan(frozenset())
    assert [len(p.float_layers) for p in plans[1:4]] == [1, 6, 11]  # fc, blocks.11, blocks.10
    # a label past four names is short, and still tells two plans apart
    labels = {p.label(layers) for p in plans}
    assert len(labels) == len(plans) and all(len(label) < 120 for label in labels)


def test_compare_lists_every_weight_layer_with_node_and_block(deep, digits, cli, tmp_path):
    int8 = tmp_path / "deep-blocks.int8.onnx"
    made = cli(
        "calibrate", deep, "--data", digits["train_dir"], "--calib-size", "64",
        "--eval-data", digits["heldout_dir"], "--eval-size", "64", "--target", "cpu",
        "--max-top1-drop", "100", "--no-trt-cache", "-o", int8,
    )  # fmt: skip
    assert made.exit_code == 0, made.stderr
    out = tmp_path / "out"
    result = cli(
        "compare", deep, int8, "--data", digits["heldout_dir"], "--count", "16", "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    report = json.loads((out / "compare.json").read_text())
    by_node = {row["node"]: row for row in report["layers"]}
    assert set(_weight_nodes(deep)) <= set(by_node)
    assert by_node["/blocks/blocks.7/depthwise/Conv"]["block"] == "blocks.7"
    assert by_node["/blocks/blocks.7/Add_1"]["block"] == "blocks.7"  # the block's residual add
    # the terminal's table: the worst layers and a note; the files: every layer
    assert f"20 of {len(report['layers'])} layers shown" in result.stderr
    table_rows = [line for line in result.stdout.splitlines() if "/blocks/" in line]
    assert 0 < len(table_rows) <= 20 + 2  # (a long name may fold onto a second line)
    markdown = (out / "compare.md").read_text()
    assert all(node in markdown for node in _weight_nodes(deep))
    assert "| block" in markdown and "| node" in markdown


def test_plan_with_a_small_candidate_budget_says_what_it_skipped(deep, digits, cli, tmp_path):
    """One-shot sensitivity past 16 layers, a block per greedy step, stopped by
    --max-candidates after two plans; the report names the plans it never evaluated."""
    out = tmp_path / "out"
    common = (
        "--data", digits["train_dir"], "--calib-size", "64", "--eval-data",
        digits["heldout_dir"], "--eval-size", "100", "--target", "tensorrt",
        "--max-top1-drop", "100", "--work-dir", tmp_path / "work",
    )  # fmt: skip
    result = cli("plan", deep, *common, "--max-candidates", "2", "-o", out)
    assert result.exit_code == 0, result.stderr
    report = json.loads((out / "plan.json").read_text())
    search = report["search"]
    assert search["sensitivity"].startswith("one-shot") and search["steps"] == "a block at a time"
    assert search["stopped_by"] == "--max-candidates 2" and search["evaluated"] == 2
    assert search["planned"] == BLOCKS + 2  # a step per block, the stem and the head
    assert len(search["not_evaluated"]) == BLOCKS
    assert "the search stopped at --max-candidates 2" in result.stderr
    assert f"2 of {BLOCKS + 2} candidate plans evaluated" in result.stderr
    assert "candidate 1/" in result.stderr  # a progress line per step
    assert len(report["plans"]) == 3  # all-INT8 and the two candidates
    sensitivity = report["sensitivity"]
    assert len(sensitivity) == len(report["layers"]) == 5 * BLOCKS + 2
    assert {row["block"] for row in sensitivity} >= {"blocks.0", "blocks.11", "stem", "fc"}
    assert all(row["noise added % (all-INT8)"] >= 0 for row in sensitivity)
    assert f"20 of {5 * BLOCKS + 2} layers shown" in result.stderr
    # the time budget stops it too (here before any candidate), and says so
    again = cli("plan", deep, *common, "--time-budget", "0.001", "-o", out, "--force")
    assert again.exit_code == 0, again.stderr
    search = json.loads((out / "plan.json").read_text())["search"]
    assert search["stopped_by"] == "--time-budget 0.001 s" and search["evaluated"] == 0
    assert len(search["not_evaluated"]) == BLOCKS + 2
    assert "the search stopped at --time-budget 0.001 s" in again.stderr


def test_exhaustive_is_refused_with_the_count_before_any_work(deep, digits, cli, tmp_path):
    out = tmp_path / "out"
    result = cli(
        "plan", deep, "--data", digits["train_dir"], "--exhaustive", "-o", out,
        "--work-dir", tmp_path / "work",
    )  # fmt: skip
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    free = 5 * BLOCKS + 2
    assert f"would need 2^{free} = {2**free:,} plans" in result.stderr
    assert "drop --exhaustive" in result.stderr and "--keep-layer" in result.stderr
    assert not out.exists() and not (tmp_path / "work").exists()


def test_plan_result_file_meets_the_budget(deep, digits, cli, tmp_path):
    """The default 1-point budget on the held-out digits: the written plan's file is an INT8
    Q/DQ model whose recorded layer precisions are the chosen plan's, and within the budget."""
    out = tmp_path / "out"
    result = cli(
        "plan", deep, "--data", digits["train_dir"], "--calib-size", "128",
        "--eval-data", digits["heldout_dir"], "--eval-size", "200", "--target", "tensorrt",
        "--max-candidates", "4", "-o", out, "--work-dir", tmp_path / "work",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    report = json.loads((out / "plan.json").read_text())
    chosen = report["chosen"]
    assert chosen["drop_points"] <= report["max_top1_drop"] == 1
    written = out / "deep-blocks.plan-tensorrt.onnx"
    assert report["written"] == str(written)
    info = read_artifact(written)
    assert json.loads(info.metadata["precision_plan"]) == chosen["precisions"]
    assert set(chosen["precisions"]) == {x.name for x in weight_layers(deep)}
    graph = onnx.load(str(written)).graph
    assert sum(n.op_type == "DequantizeLinear" for n in graph.node) > 5 * BLOCKS
    import onnxruntime as ort

    session = ort.InferenceSession(str(written), providers=["CPUExecutionProvider"])
    logits = session.run(None, {"input": np.zeros((2, 3, SIZE, SIZE), np.float32)})[0]
    assert logits.shape == (2, 10)
    assert "| block" in (out / "plan.md").read_text()


def test_an_unknown_kept_layer_lists_a_few_of_many(deep, digits, cli, tmp_path):
    result = cli(
        "plan", deep, "--data", digits["train_dir"], "--keep-layer", "conv9",
        "-o", tmp_path / "out", "--work-dir", tmp_path / "work",
    )  # fmt: skip
    assert result.exit_code == 2 and "'conv9' is not a weight layer" in result.stderr
    assert f"and {5 * BLOCKS + 2 - 20} more" in result.stderr


def test_a_conv_whose_batchnorm_was_folded_maps_to_its_tensor():
    """Conv -> BatchNormalization -> Relu, and the same graph as the INT8 recipes fold it
    (calib/placement.fold_batchnorm: the Conv writes the BatchNorm's tensor): compare maps the
    Conv as folded and keeps the Relu, instead of refusing two different networks."""
    import copy
    from pathlib import Path

    from onnx import TensorProto, helper, numpy_helper

    from alexnet_deploy.calib.placement import fold_batchnorm
    from alexnet_deploy.precision.layers import map_layers

    rng = np.random.default_rng(0)
    shapes = {"w": (4, 3, 3, 3), "b": (4,), "gamma": (4,), "beta": (4,), "mean": (4,)}
    inits = [numpy_helper.from_array(rng.normal(size=s).astype(np.float32), n)
             for n, s in shapes.items()]  # fmt: skip
    inits.append(numpy_helper.from_array(np.ones(4, np.float32), "var"))
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["conv"], name="conv"),
        helper.make_node(
            "BatchNormalization", ["conv", "gamma", "beta", "mean", "var"], ["bn"], name="bn"
        ),
        helper.make_node("Relu", ["bn"], ["relu"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("relu", TensorProto.FLOAT, None)], inits,
    )  # fmt: skip
    reference = helper.make_model(graph)
    candidate = copy.deepcopy(reference)
    assert fold_batchnorm(candidate) == ["bn"]
    mapping = map_layers(reference, candidate, Path("ref.onnx"), Path("folded.onnx"))
    assert [x.name for x in mapping.folded] == ["conv"]
    assert [x.name for x in mapping.layers] == ["relu"]
