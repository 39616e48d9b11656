"""Ceilings that are ceilings: the instruction-set peak of this machine is above every kernel
measured on it and every bench row; the last-level cache decides the bound."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from alexnet_deploy.bench.config import BenchConfig, Matrix, MeasureRules
from alexnet_deploy.bench.report import describe_ceilings
from alexnet_deploy.bench.roofline import Ceilings, measure_ceilings, roofline_of
from alexnet_deploy.workflow import ModelRequest, bench_model

RULES = MeasureRules(
    warmup_iterations=2, warmup_seconds=0.05, min_iterations=20, min_seconds=0.2, max_seconds=0.5
)


@pytest.fixture(scope="module")
def probed(tmp_path_factory):
    """This machine's ceilings, probed once; the directory holds the cache bench reads."""
    cache = tmp_path_factory.mktemp("ceilings")
    return measure_ceilings(cache, refresh=True), cache


@pytest.fixture(scope="module")
def ceilings(probed):
    return probed[0]


def test_measured_kernels_stay_under_the_instruction_set_peak(ceilings):
    """A kernel over its peak means the per-cycle table or the clock is wrong for this CPU."""
    assert ceilings.clock_ghz > 0 and ceilings.cores >= 1
    assert 0 < ceilings.fp32_kernel_gflops <= ceilings.fp32_gflops, describe_ceilings(
        ceilings.__dict__
    )
    assert 0 < ceilings.int8_kernel_gops <= ceilings.int8_gops, describe_ceilings(ceilings.__dict__)
    text = describe_ceilings(ceilings.__dict__)
    assert "best measured kernel" in text and ceilings.clock_source in text


def test_no_bench_row_exceeds_its_peak(digits, probed, tmp_path):
    ceilings, probe_dir = probed
    model = tmp_path / "digits-tiny.onnx"
    shutil.copy(digits["onnx"], model)
    shutil.copytree(probe_dir, tmp_path / "work" / ".cache")  # the same machine: reuse the probe
    config = BenchConfig(
        Matrix(backends=("ort",), precisions=("fp32", "int8"), batches=(1, 16)), RULES
    )
    request = ModelRequest(model=model, data=str(digits["heldout_dir"]))
    report, result, _ = bench_model(request, config, tmp_path / "work", tmp_path / "out")
    assert report["ceilings"]["int8_gops"] == ceilings.int8_gops
    rows = [r for r in result.rows if r.ok]
    assert len(rows) == 4
    for row in rows:
        assert 0 < row.roofline.pct_compute_peak <= 100, row
        assert row.roofline.weights_in_llc in (True, False)


@pytest.mark.slow
@pytest.mark.openvino
def test_real_alexnet_near_its_peak_stays_under_it(exported, probed, tmp_path):
    """Where rows come near the ceiling: the real network at batch 32, INT8 through OpenVINO's
    engine and FP32 through OpenVINO used directly, which picks bf16 itself on CPUs that have
    it (181% of the FP32 peak on an AMD Zen 4 before the ceiling knew that)."""
    ceilings, probe_dir = probed
    model = tmp_path / "alexnet.onnx"
    shutil.copy(exported("torchvision").path, model)
    shutil.copytree(probe_dir, tmp_path / "work" / ".cache")
    config = BenchConfig(
        Matrix(
            backends=("openvino", "openvino-direct"), precisions=("fp32", "int8"), batches=(32,)
        ),
        MeasureRules(warmup_iterations=2, warmup_seconds=0.1, min_iterations=5, max_seconds=1.0),
    )
    _, result, _ = bench_model(ModelRequest(model=model), config, tmp_path / "work", tmp_path / "o")
    rows = [r for r in result.rows if r.ok]
    assert len(rows) == 4
    for row in rows:
        assert 0 < row.roofline.pct_compute_peak <= 100, (row, describe_ceilings(ceilings.__dict__))


def test_weights_in_the_last_level_cache_are_not_memory_bound():
    base = dict(fp32_gflops=100.0, int8_gops=400.0, bandwidth_gbs=10.0, threads=2, fingerprint="x")
    # one image of a 1 GMAC network with 60 MB of weights: intensity 33 < ridge 40 -> memory
    streamed = roofline_of(100, 100, 10**9, 60 * 2**20, 1, "int8", Ceilings(**base))
    cached = roofline_of(
        100, 100, 10**9, 60 * 2**20, 1, "int8", Ceilings(**base, llc_bytes=64 * 2**20)
    )
    assert streamed.bound == "memory" and not streamed.weights_in_llc
    assert cached.bound == "compute" and cached.weights_in_llc


def test_macs_exclude_zero_padding(tmp_path):
    """A 3x3 convolution, padding 1, on a 4x4 image: 10 taps per axis land on real pixels
    (2 + 3 + 3 + 2), so 100 multiply-accumulates, not the 144 that counting padding gives."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from alexnet_deploy.bench.roofline import macs_per_image

    weight = numpy_helper.from_array(np.ones((1, 1, 3, 3), np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])],
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 4, 4])],
        [weight],
    )
    path = tmp_path / "conv.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    assert macs_per_image(path) == 100
