"""compare on the trained test network's real artifacts (FP16, INT8 Q/DQ) and real images:
per-layer figures, a saturating layer found, memory bound to one batch, bad input."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from alexnet_deploy.artifacts import ArtifactSet
from alexnet_deploy.precision.compare import compare_artifacts


@pytest.fixture(scope="module")
def artifacts(digits_artifacts):
    model = digits_artifacts["model"]
    return {
        "data": str(digits_artifacts["heldout_dir"]),
        "fp32": model,
        "int8": ArtifactSet(model).int8("cpu"),
        "fp16": ArtifactSet(model).fp16,
    }


def test_int8_layers_emulated(artifacts):
    result = compare_artifacts(
        artifacts["fp32"], artifacts["int8"], artifacts["data"], count=32, batch_size=8
    )
    assert result.images == 32 and result.layers
    names = [f.name for f in result.layers]
    assert names[-1] == onnx.load(str(artifacts["fp32"])).graph.output[0].name
    for layer in result.layers:
        assert 0.9 < layer.cosine <= 1 + 1e-9 and layer.snr_db > 10, layer
        assert layer.clip_rate is None or 0 <= layer.clip_rate < 0.05
    assert any(f.clip_rate is not None for f in result.layers) and not result.clip_note
    assert result.logits["top1_agreement"] >= 0.9


def test_fp16_has_no_clip_rates_and_says_why(artifacts):
    result = compare_artifacts(artifacts["fp32"], artifacts["fp16"], artifacts["data"], count=16)
    assert all(f.clip_rate is None for f in result.layers) and "no Q/DQ" in result.clip_note
    assert all(f.snr_db > 40 for f in result.layers)
    assert not result.folded  # FP16 keeps every layer's own tensor


def test_a_saturating_layer_is_found(artifacts, tmp_path):
    """An INT8 file whose quantizer on one layer was given an eighth of its range: the table
    names that layer (its clip rate jumps and its SNR falls first there)."""
    model = onnx.load(str(artifacts["int8"]))
    quantizers = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    inits = {i.name: i for i in model.graph.initializer}
    from alexnet_deploy.precision.layers import map_layers

    reference = onnx.load(str(artifacts["fp32"]))
    mapping = map_layers(reference, model, artifacts["fp32"], artifacts["int8"])
    mapped = {layer.name for layer in mapping.layers}
    target = next(
        q for q in quantizers if q.input[0] in mapped and q.input[1] in inits
        and numpy_helper.to_array(inits[q.input[1]]).size == 1
    )  # fmt: skip
    scale = numpy_helper.to_array(inits[target.input[1]])
    smaller = np.asarray(scale / 8, dtype=scale.dtype)
    inits[target.input[1]].CopyFrom(numpy_helper.from_array(smaller, target.input[1]))
    broken = tmp_path / "broken.onnx"
    onnx.save(model, str(broken))
    result = compare_artifacts(artifacts["fp32"], broken, artifacts["data"], count=32)
    worst = max(result.layers, key=lambda f: f.clip_rate or 0)
    assert worst.name == target.input[0] and worst.clip_rate > 0.05
    first_drop = next(f for f in result.layers if f.snr_db < 20)
    assert first_drop.name == target.input[0]


def test_memory_held_is_one_batch(artifacts):
    small = compare_artifacts(artifacts["fp32"], artifacts["int8"], artifacts["data"],
                              count=16, batch_size=2)  # fmt: skip
    large = compare_artifacts(artifacts["fp32"], artifacts["int8"], artifacts["data"],
                              count=16, batch_size=8)  # fmt: skip
    assert large.peak_tensor_bytes == 4 * small.peak_tensor_bytes
    assert [f.cosine for f in small.layers] == pytest.approx([f.cosine for f in large.layers])


def test_cli_outputs_table_json_files_and_plot(artifacts, cli, tmp_path):
    result = cli(
        "compare", artifacts["fp32"], artifacts["int8"], "--data", artifacts["data"],
        "--count", "16", "--runtime", "ort", "--out", tmp_path / "out",
        "--plot", tmp_path / "p.png", "--format", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["schema"] == "alexnet-deploy/compare/1" and data["runtime"] == "ort"
    assert data["layers"] and {"cosine", "snr_db", "max_abs_error", "clip_rate"} <= set(
        data["layers"][0]
    )
    assert data["logits"]["top1_agreement"] >= 0.8
    on_disk = json.loads((tmp_path / "out" / "compare.json").read_text())
    assert on_disk == data
    assert (tmp_path / "out" / "compare.md").read_text().count("|") > 20
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "peak intermediate tensors held" in result.stderr


def test_different_networks_are_refused_naming_the_first_mismatch(artifacts, cli, tmp_path):
    model = onnx.load(str(artifacts["fp32"]))
    first = next(n for n in model.graph.node if n.op_type == "Conv")
    old = first.output[0]
    for node in model.graph.node:  # another network: the first conv's tensor is gone
        node.input[:] = ["renamed" if i == old else i for i in node.input]
    first.output[0] = "renamed"
    other = tmp_path / "other.onnx"
    onnx.save(model, str(other))
    result = cli("compare", artifacts["fp32"], other, "--data", artifacts["data"])
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert "is not a version of" in result.stderr and repr(old) in result.stderr
    model.graph.input[0].type.tensor_type.shape.dim[2].dim_value = 99
    onnx.save(model, str(other))
    result = cli("compare", artifacts["fp32"], other, "--data", artifacts["data"])
    assert result.exit_code == 2 and "its input" in result.stderr


def test_missing_candidate_is_one_line(artifacts, cli, tmp_path):
    result = cli("compare", artifacts["fp32"], tmp_path / "nope.onnx")
    assert result.exit_code != 0 and "not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_openvino_computes_the_candidate_too(artifacts):
    pytest.importorskip("openvino", reason="OpenVINO is not installed")
    emulated = compare_artifacts(artifacts["fp32"], artifacts["int8"], artifacts["data"], count=16)
    ov = compare_artifacts(
        artifacts["fp32"], artifacts["int8"], artifacts["data"], count=16, runtime="openvino"
    )
    assert ov.runtime == "openvino" and [f.name for f in ov.layers] == [
        f.name for f in emulated.layers
    ]
    assert all(f.cosine > 0.9 for f in ov.layers) and ov.logits["top1_agreement"] >= 0.8


@pytest.mark.parametrize("runtime", ["ort", "openvino"])
def test_profile_puts_time_beside_the_error(artifacts, cli, tmp_path, runtime):
    if runtime == "openvino":
        pytest.importorskip("openvino", reason="OpenVINO is not installed")
    result = compare_artifacts(
        artifacts["fp32"], artifacts["int8"], artifacts["data"], count=8, runtime=runtime,
        profile_runs=3,
    )  # fmt: skip
    profile = result.profile
    assert profile["runtime"] == runtime and profile["runs"] == 3 and profile["batch"] == 8
    rows = {f.name for f in result.layers} | {f.split(" (")[0] for f in result.fused}
    assert set(profile["layers_ms"]) <= rows and all(v > 0 for v in profile["layers_ms"].values())
    # every weight layer's kernel is timed (its row: the tensor the quantized layer writes)
    assert sum(1 for k in profile["kernels"].values() if k) >= 6
    assert profile["total_ms"] == pytest.approx(
        sum(profile["layers_ms"].values()) + sum(profile["overheads_ms"].values())
    )
    assert "as deployed" in result.profile_note
    out = cli(
        "compare", artifacts["fp32"], artifacts["int8"], "--data", artifacts["data"], "--count",
        "8", "--runtime", runtime, "--profile", "--out", tmp_path / "out", "--format", "md",
    )  # fmt: skip
    assert out.exit_code == 0, out.stderr
    assert "time ms" in out.stdout and "(quantize / dequantize)" in out.stdout
    assert "time ms" in (tmp_path / "out" / "compare.md").read_text()
