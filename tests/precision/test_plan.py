"""plan on the trained test network: per-layer sensitivity, the plans' emulated fidelity, the
fastest within the budget written with its layer -> precision map; an honest failure of plain
INT8 (calibration on under-exposed photos) recovered; the calibration-sufficiency section;
bad input. Timing runs are the shortest bench's rules allow: the figures are checked for
presence and plumbing, never for speed."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper
from PIL import Image

from alexnet_deploy.calib.fidelity import Fidelity, compare_logits, ort_logits
from alexnet_deploy.errors import UsageError
from alexnet_deploy.onnx_model import read_artifact
from alexnet_deploy.precision.compare import compare_artifacts
from alexnet_deploy.precision.plans import Plan, WeightLayer
from alexnet_deploy.precision.search import (
    Evaluated,
    candidate_plans,
    pareto_front,
    to_measure,
)
from alexnet_deploy.precision.speed import speed_case

FAST = ("--repeat", "1", "--batch", "1", "--min-seconds", "0.05", "--max-seconds", "0.1")
ORT_B1 = speed_case("ort", 1).label  # how a plan's speed on ONNX Runtime at batch 1 is filed


@pytest.fixture(scope="module")
def model(digits_model):
    """The trained network's private copy (plan writes its range cache beside it)."""
    return digits_model


@pytest.fixture(scope="module")
def dim_photos(digits, tmp_path_factory):
    """Unrepresentative calibration images, honestly provoked: every fourth training photo,
    under-exposed to 30% brightness (the same digits, as a dim camera would take them)."""
    root = tmp_path_factory.mktemp("dim")
    for path in sorted(digits["train_dir"].rglob("*.png"))[::4]:
        pixels = np.asarray(Image.open(path)).astype(np.float32) * 0.3
        (root / path.parent.name).mkdir(exist_ok=True)
        Image.fromarray(pixels.round().astype(np.uint8)).save(root / path.parent.name / path.name)
    return root


def _report(out):
    return json.loads((out / "plan.json").read_text())


def _plan_of(path) -> dict:
    return json.loads(read_artifact(path).metadata["precision_plan"])


def _dequantized_inputs(path, fp32) -> dict[str, bool]:
    """Weight layer (its FP32 output tensor) -> whether its weight comes through a
    DequantizeLinear (nodes matched by name: a quantized layer may write its Relu's tensor)."""
    names = {n.name: n.output[0] for n in onnx.load(str(fp32)).graph.node}
    graph = onnx.load(str(path)).graph
    producers = {o: n.op_type for n in graph.node for o in n.output}
    return {
        names[n.name]: producers.get(n.input[1]) == "DequantizeLinear"
        for n in graph.node
        if n.op_type in ("Conv", "Gemm")
    }


def test_well_calibrated_network_plans_all_int8(model, digits, cli, tmp_path):
    """The tensorrt form cannot be timed here: the fewest float MACs within the budget wins,
    and on well-calibrated data that is all-INT8. The sufficiency section finds a calibration
    size within the budget and no shift between calibration and held-out images."""
    out = tmp_path / "out"
    result = cli(
        "plan", model, "--data", digits["train_dir"], "--eval-data", digits["heldout_dir"],
        "--calib-size", "128", "--eval-size", "300", "--target", "tensorrt", "--sufficiency",
        "-o", out, "--work-dir", tmp_path / "work",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    report = _report(out)
    written = out / "digits-tiny.plan-tensorrt.onnx"
    assert report["written"] == str(written) and written.is_file()
    assert set(report["chosen"]["precisions"].values()) == {"int8"}
    assert "cannot be timed" in report["choice_rule"]
    assert _plan_of(written) == report["chosen"]["precisions"]
    assert all(_dequantized_inputs(written, model).values())
    info = read_artifact(written)
    assert info.metadata["int8_target"] == "tensorrt" and info.precision == "int8"
    assert len(report["layers"]) == 8 and len(report["sensitivity"]) == 8
    sufficiency = report["sufficiency"]
    assert sufficiency["smallest_sufficient"] is not None and not sufficiency["shifted"]
    assert [s["size"] for s in sufficiency["sizes"]][-1] == 128
    for path in (out / "plan.csv", out / "plan.md"):
        assert path.stat().st_size > 100
    assert "Calibration sufficiency" in (out / "plan.md").read_text()


def test_unrepresentative_calibration_is_recovered(model, digits, dim_photos, cli, tmp_path):
    """Plain INT8 of the CPU form misses the budget when calibrated on dim photos; the
    sensitivity names the first convolution (whose input quantizer clips the bright pixels)
    and keeping it float recovers the budget; the written file is what the report says."""
    out = tmp_path / "out"
    result = cli(
        "plan", model, "--data", dim_photos, "--eval-data", digits["heldout_dir"],
        "--eval-size", "300", "-o", out, "--work-dir", tmp_path / "work",
        "--plot", tmp_path / "plan.png", "--sufficiency", *FAST,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    report = _report(out)
    plans = {p["plan"]: p for p in report["plans"]}
    assert plans["all-INT8"]["drop_points"] > 1.0  # the provocation worked
    # compare names the culprit: the input's quantizer clips the bright pixels the dim
    # calibration photos never showed it
    plain = tmp_path / "dim-int8.onnx"
    made = cli(
        "calibrate", model, "--data", dim_photos, "--eval-data", digits["heldout_dir"],
        "--target", "cpu", "--max-top1-drop", "100", "--no-trt-cache", "-o", plain,
    )  # fmt: skip
    assert made.exit_code == 0, made.stderr
    compared = compare_artifacts(model, plain, str(digits["heldout_dir"]), count=32)
    worst = max(compared.layers, key=lambda f: f.clip_rate or 0)
    assert worst.name == "input" and worst.clip_rate > 0.1
    assert plans["all-INT8"]["images_per_s"]  # timed as the reference
    regained = max(report["sensitivity"], key=lambda s: s["points regained"])
    assert regained["layer"] == "conv2d"
    recovered = plans["float: conv2d"]
    assert recovered["drop_points"] <= 1.0 and recovered["images_per_s"][ORT_B1] > 0
    references = {r["plan"]: r for r in report["references"]}
    assert references["all-FP32"]["images_per_s"][ORT_B1] > 0
    chosen = report["chosen"]
    assert chosen["drop_points"] <= 1.0
    written = out / "digits-tiny.plan-cpu.onnx"
    assert _plan_of(written) == chosen["precisions"]
    dequantized = _dequantized_inputs(written, model)
    assert {k: not v for k, v in dequantized.items()} == {
        k: p != "int8" for k, p in chosen["precisions"].items()
    }
    # the file's own fidelity is the one reported (emulated: the same on every CPU)
    from alexnet_deploy.calib.stage import DataRequest

    request = DataRequest(data=str(dim_photos), eval_data=str(digits["heldout_dir"]), eval_size=300)
    held_out = request.load(read_artifact(model)).eval
    reference = ort_logits(model, "input", held_out.images, 64)
    again = compare_logits(
        reference, ort_logits(written, "input", held_out.images, 64, emulated=True), held_out.labels
    )
    assert again.as_dict() == pytest.approx(chosen["fidelity"], abs=1e-4)
    assert report["judged_on"] == "emulated top-1 accuracy"
    # the calibration images are flagged as unlike the held-out ones
    assert report["sufficiency"]["shifted"] and report["sufficiency"]["smallest_sufficient"] is None
    assert (tmp_path / "plan.png").read_bytes()[:4] == b"\x89PNG"
    # build records the plan in the engine's sidecar
    built = cli("build", written, "--backend", "ort", "--work-dir", tmp_path / "work")
    assert built.exit_code == 0, built.stderr
    sidecars = list((tmp_path / "work").rglob("engine.json"))
    recorded = [json.loads(p.read_text()).get("precision_plan") for p in sidecars]
    assert chosen["precisions"] in recorded or chosen["plan"] == "all-FP32"


def test_exhaustive_with_kept_layers_and_fp16(model, digits, cli, tmp_path):
    """Every plan with the kept layers float (2^5 of them); float layers in FP16: their
    weights stored as FP16, casts around them."""
    out = tmp_path / "out"
    result = cli(
        "plan", model, "--data", digits["train_dir"], "--eval-data", digits["heldout_dir"],
        "--calib-size", "64", "--eval-size", "200", "--target", "tensorrt", "--exhaustive",
        "--keep", "fp16", "--keep-layer", "conv2d", "--keep-layer", "linear",
        "--keep-layer", "node_linear_1", "-o", out, "--work-dir", tmp_path / "work",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    report = _report(out)
    kept = {"conv2d", "linear", "linear_1"}
    with_kept = [
        p for p in report["plans"] if kept <= {k for k, v in p["precisions"].items() if v != "int8"}
    ]
    assert len(with_kept) == 2**5
    chosen = report["chosen"]["precisions"]
    assert all(chosen[k] == "fp16" for k in kept)
    written = onnx.load(str(out / "digits-tiny.plan-tensorrt.onnx"))
    inits = {i.name: i.data_type for i in written.graph.initializer}
    assert inits["features.0.weight.fp16"] == TensorProto.FLOAT16
    assert sum(n.op_type == "Cast" for n in written.graph.node) >= 2 * len(kept)


def test_unlabelled_held_out_images_use_agreement_and_auto_picks_the_range_method(
    model, digits, cli, tmp_path
):
    """Without labels the budget is agreement with FP32. ``--method auto`` calibrates with
    every range method and plans with the one whose all-INT8 file is most faithful: the
    report lists each method's drop, and the written file says which method made it."""
    from alexnet_deploy.calib.config import METHODS

    flat = tmp_path / "flat"
    flat.mkdir()
    for path in sorted(digits["heldout_dir"].rglob("*.png"))[:40]:
        shutil.copy(path, flat / path.name)
    out = tmp_path / "out"
    result = cli(
        "plan", model, "--data", digits["train_dir"], "--eval-data", flat, "--calib-size", "64",
        "--target", "tensorrt", "--method", "auto", "-o", out, "--work-dir", tmp_path / "work",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    report = _report(out)
    assert report["judged_on"] == "emulated top-1 agreement with FP32 (no labels)"
    assert "no labels" in result.stderr and report["chosen"]["fidelity"]["top1_accuracy"] is None
    drops = report["all_int8_drop_per_method"]
    assert sorted(drops) == sorted(METHODS)
    method = report["calibration_method"]
    assert drops[method] == min(drops.values()) and "--method auto" in result.stderr
    plans = {p["plan"]: p for p in report["plans"]}
    assert plans["all-INT8"]["drop_points"] == pytest.approx(drops[method])
    written = out / "digits-tiny.plan-tensorrt.onnx"
    assert read_artifact(written).metadata["calibration_method"] == method


def test_unknown_kept_layer_lists_the_real_ones(model, digits, cli, tmp_path):
    out = tmp_path / "out"
    result = cli(
        "plan", model, "--data", digits["train_dir"], "--keep-layer", "conv9", "-o", out,
        "--work-dir", tmp_path / "work",
    )  # fmt: skip
    assert result.exit_code == 2 and "'conv9' is not a weight layer" in result.stderr
    assert "conv2d, conv2d_1, conv2d_2, conv2d_3, conv2d_4, linear, linear_1, logits" in (
        result.stderr
    )
    assert "Traceback" not in result.stderr and not out.exists()


def test_a_budget_no_plan_meets_writes_nothing(model, digits, cli, tmp_path):
    """The first convolution's outputs scaled past FP16's range (65504), that layer kept in
    FP16 in every plan: each plan overflows and disagrees with FP32 (unlabelled images: the
    budget is on agreement), so none meets the budget; exit 1, nothing written, the previous
    plan file untouched."""
    scaled = tmp_path / "scaled.onnx"
    proto = onnx.load(str(model))
    for init in proto.graph.initializer:
        if init.name in ("features.0.weight", "features.0.bias"):
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 1e5, init.name))
    onnx.save(proto, str(scaled))
    flat = tmp_path / "flat"
    flat.mkdir()
    for path in sorted(digits["heldout_dir"].rglob("*.png"))[:100]:
        shutil.copy(path, flat / path.name)
    out = tmp_path / "out"
    out.mkdir()
    previous = out / "scaled.plan-tensorrt.onnx"
    shutil.copy(model, previous)  # a file of the tool's own (its metadata): --force may replace it
    result = cli(
        "plan", scaled, "--data", digits["train_dir"], "--eval-data", flat,
        "--calib-size", "32", "--target", "tensorrt", "--keep", "fp16",
        "--keep-layer", "conv2d", "-o", out, "--work-dir", tmp_path / "work", "--force",
    )  # fmt: skip
    assert result.exit_code == 1, result.stderr
    assert "no precision plan meets the budget of 1 points" in result.stderr
    assert "Traceback" not in result.stderr
    assert previous.read_bytes() == model.read_bytes() and not (out / "plan.json").exists()


def _layers(n: int) -> list[WeightLayer]:
    return [WeightLayer(f"l{i}", f"node_l{i}", "Conv", 10 * (i + 1)) for i in range(n)]


def _evaluated(plan: Plan, drop: float) -> Evaluated:
    return Evaluated(plan, Fidelity(100, 1 - drop / 100, 1.0, 1.0, 0.0))


def test_candidate_plans_and_what_is_measured():
    layers = _layers(4)
    order = ["l2", "l0", "l3", "l1"]
    greedy = candidate_plans(layers, order, frozenset({"l1"}), exhaustive=False)
    assert [sorted(p.float_layers) for p in greedy] == [
        ["l1"], ["l1", "l2"], ["l0", "l1", "l2"], ["l0", "l1", "l2", "l3"],
    ]  # fmt: skip
    assert len(candidate_plans(layers, order, frozenset(), exhaustive=True)) == 16
    with pytest.raises(UsageError, match="at most 10 layers"):
        candidate_plans(_layers(11), [], frozenset(), exhaustive=True)
    found = [
        _evaluated(Plan(frozenset()), 3.0),  # misses
        _evaluated(Plan(frozenset({"l0"})), 0.8),  # 10 MACs float: on the front
        _evaluated(Plan(frozenset({"l1"})), 0.8),  # 20 MACs, no better: dominated
        _evaluated(Plan(frozenset({"l0", "l1"})), 0.2),  # 30 MACs, better: front
        _evaluated(Plan(frozenset({"l0", "l1", "l2"})), 0.0),  # 60: front, beyond the cap
    ]
    assert [len(e.plan.float_layers) for e in pareto_front(found, layers)] == [0, 1, 2, 3]
    chosen, skipped = to_measure(found, layers, budget=1.0, most=2)
    assert [sorted(e.plan.float_layers) for e in chosen] == [["l0"], ["l0", "l1"]]
    assert skipped["all-INT8"].startswith("misses the budget")
    assert skipped["float: l1"].startswith("dominated")
    assert "beyond --max-measured 2" in skipped["INT8 only: l3"]


@pytest.mark.nncf
def test_nncf_accuracy_control_beside_the_plan(model, digits, dim_photos, cli, tmp_path):
    out = tmp_path / "out"
    result = cli(
        "plan", model, "--data", dim_photos, "--eval-data", digits["heldout_dir"],
        "--eval-size", "200", "--nncf", "-o", out, "--work-dir", tmp_path / "work", *FAST,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    references = {r["plan"]: r for r in _report(out)["references"]}
    peer = references["NNCF accuracy control"]
    assert peer["images_per_s"][ORT_B1] > 0 and 0 <= peer["fidelity"]["top1_agreement"] <= 1
    assert "Statistics collection" not in result.stdout  # NNCF's progress goes to stderr
