"""BF16 (issue #25): bfloat16's rounding, the BF16 artifact for TensorRT, its fidelity emulated
and as executed, the engines that run bf16 and what each reads back, the refusals (a CPU without
native BF16, simulated through cpuinfo; ONNX Runtime's CPU provider), and the labels of the
rows, the headline and the gate. Real ONNX Runtime, OpenVINO and PyTorch on the trained digits
network; the TensorRT check against the real bindings (tests/trt_bindings.py)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper

from alexnet_deploy import constants as C
from alexnet_deploy import cpu_isa
from alexnet_deploy.calib.bf16 import (
    bf16_bits,
    bf16_emulation,
    bf16_model,
    convert_bf16,
    round_to_bf16,
)
from alexnet_deploy.calib.fidelity import centered_cosine
from alexnet_deploy.calib.stage import DataRequest
from alexnet_deploy.calib.tensorrt_check import (
    TensorRTCompatibilityError,
    check_tensorrt_float_types,
)
from alexnet_deploy.engines.build import build_engine
from alexnet_deploy.engines.options import BuildOptions
from alexnet_deploy.engines.registry import get_backend
from tests.test_cpu_isa import GRAVITON3, ICE_LAKE, SAPPHIRE_RAPIDS, ZEN3, ZEN4
from tests.test_faults import _snapshot, assert_clean_failure

NATIVE = cpu_isa.this_cpu().bf16_native
needs_bf16 = pytest.mark.skipif(
    not NATIVE,
    reason=f"this CPU (class {cpu_isa.this_cpu().name}) has no native BF16: the bf16 engines are "
    "refused here (the refusal is tested on a simulated CPU below)",
)
REFUSAL = (
    "has no native BF16 (AVX512_BF16/AMX-BF16/ARM BF16): bf16 would be emulated at a loss; "
    "use fp32 or int8"
)


def test_round_to_bf16_rounds_to_nearest_even_on_known_values():
    one_ulp = 2.0**-7  # bfloat16 keeps 7 mantissa bits
    values = np.array(
        [
            1.0,
            1 + one_ulp / 2,  # a tie, 1.0 is even: down
            1 + 3 * one_ulp / 2,  # a tie, 1 + ulp is odd: up to 1 + 2 ulp
            1 + one_ulp / 2 + 2.0**-20,  # past the tie: up
            np.pi,
            -2.5e-3,
            65504.0,  # FP16's largest: a bfloat16 rounds it to 65536
            3.4028235e38,  # float32's largest: past bfloat16's, to infinity
            np.inf,
            -0.0,
            1e-40,  # a subnormal keeps its top bits
        ],
        dtype=np.float32,
    )
    expected = np.array(
        [1.0, 1.0, 1 + 2 * one_ulp, 1 + one_ulp, 3.140625, -0.0025024414, 65536.0, np.inf,
         np.inf, -0.0, 9.1835496e-41],
        dtype=np.float32,
    )  # fmt: skip
    got = round_to_bf16(values)
    assert got.dtype == np.float32 and np.array_equal(got, expected)
    assert np.signbit(got[9])
    assert np.isnan(round_to_bf16(np.array([np.nan, -np.nan], np.float32))).all()
    # every result is a bfloat16: its low 16 bits are zero, and rounding again changes nothing
    rng = np.random.default_rng(0)
    random = (rng.standard_normal(100_000) * 10.0 ** rng.integers(-8, 8, 100_000)).astype(
        np.float32
    )
    rounded = round_to_bf16(random)
    assert not (rounded.view(np.uint32) & 0xFFFF).any()
    assert np.array_equal(round_to_bf16(rounded), rounded)
    assert np.abs(rounded - random).max() <= np.abs(random).max() * 2.0**-8
    # ONNX Runtime's Cast to bfloat16 and back (the emulation's rounding) agrees bit for bit
    from onnx import helper

    graph = helper.make_graph(
        [helper.make_node("Cast", ["x"], ["b"], to=TensorProto.BFLOAT16),
         helper.make_node("Cast", ["b"], ["y"], to=TensorProto.FLOAT)],
        "cast", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])],
    )  # fmt: skip
    import onnxruntime as ort

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    both = np.concatenate([random, values[np.isfinite(values)]])
    assert np.array_equal(session.run(None, {"x": both})[0], round_to_bf16(both))


@pytest.mark.parametrize(
    ("flags", "machine", "native"),
    [(ZEN4, "x86_64", True), (SAPPHIRE_RAPIDS, "x86_64", True), (GRAVITON3, "aarch64", True),
     (ICE_LAKE, "x86_64", False), (ZEN3, "x86_64", False)],
)  # fmt: skip
def test_native_bf16_per_cpu_class(flags, machine, native):
    assert cpu_isa.classify(set(flags.split()), machine).bf16_native is native


@pytest.fixture(scope="module")
def bf16_set(digits, tmp_path_factory):
    """The trained network's FP32 model with its BF16 artifact beside it (the real stage)."""
    from alexnet_deploy.models.variants import register_variant
    from tests.digits import DIGITS

    register_variant(DIGITS)  # the torch backend rebuilds the network from its variant
    root = tmp_path_factory.mktemp("bf16")
    model = root / "digits-tiny.onnx"
    shutil.copy(digits["onnx"], model)
    report = convert_bf16(model, DataRequest(data=str(digits["heldout_dir"])))
    return model, report


def test_the_bf16_artifact_is_float32_io_bfloat16_weights_lrn_in_fp32(bf16_set):
    model, report = bf16_set
    assert report.output == model.with_name("digits-tiny.bf16.onnx") and not report.failures
    artifact, fp32 = onnx.load(str(report.output)), onnx.load(str(model))
    graph = artifact.graph
    assert [v.type.tensor_type.elem_type for v in (*graph.input, *graph.output)] == [1, 1]
    originals = {i.name: numpy_helper.to_array(i) for i in fp32.graph.initializer}
    weights = [i for i in graph.initializer if len(i.dims) in (2, 4)]
    assert weights and all(i.data_type == TensorProto.BFLOAT16 for i in weights)
    for init in weights:  # rounded from the FP32 weights, not from an FP16 copy
        bits = np.frombuffer(init.raw_data, dtype=np.uint16).reshape(tuple(init.dims))
        assert np.array_equal(bits, bf16_bits(originals[init.name]))
    # LRN (a sum of squares) runs in FP32 between Casts; the convolutions in bfloat16
    produced_by = {o: n for n in graph.node for o in n.output}
    consumers = {i: n for n in graph.node for i in n.input}
    lrns = [n for n in graph.node if n.op_type == "LRN"]
    assert len(lrns) == 2
    for lrn in lrns:
        before, after = produced_by[lrn.input[0]], consumers[lrn.output[0]]
        assert (before.op_type, before.attribute[0].i) == ("Cast", TensorProto.FLOAT)
        assert (after.op_type, after.attribute[0].i) == ("Cast", TensorProto.BFLOAT16)
    opset = next(o.version for o in artifact.opset_import if o.domain in ("", "ai.onnx"))
    assert opset >= 22  # Conv and MaxPool take bfloat16 from opset 22: valid ONNX
    meta = {p.key.removeprefix(C.METADATA_PREFIX): p.value for p in artifact.metadata_props}
    assert meta["precision"] == "bf16" and meta["bf16_kept_fp32_ops"] == "LRN"


def test_the_bf16_artifact_fits_a_strongly_typed_tensorrt_network(bf16_set):
    """Statically, as TensorRT's strongly typed parser takes it: valid typed ONNX, float32 I/O,
    and tensor types that are members of the real bindings' DataType (10.x and 11.x)."""
    from tests.trt_bindings import run_with_bindings

    _, report = bf16_set
    needed = check_tensorrt_float_types(onnx.load(str(report.output)))
    assert {"FLOAT", "BF16"} <= needed
    for version in ("10.13.0.35", "11.4.0.106"):
        shown = run_with_bindings(
            version,
            "import tensorrt_bindings as trt\n"
            "from alexnet_deploy.engines.tensorrt import torch_dtype_name\n"
            f"for name in {sorted(needed)!r}:\n"
            "    print(name, torch_dtype_name(getattr(trt.DataType, name)))\n"
            "print('STRONGLY_TYPED', hasattr(trt.NetworkDefinitionCreationFlag, 'STRONGLY_TYPED'))",
        ).split()
        bound = dict(zip(shown[::2], shown[1::2], strict=True))
        assert bound.pop("STRONGLY_TYPED") == "True"
        assert set(bound) == needed and bound["BF16"] == "bfloat16"
    # a mismatched type (a bfloat16 weight under a float32 Conv) is named before any build
    broken = onnx.load(str(report.output))
    first = next(n for n in broken.graph.node if n.op_type == "Conv")
    cast = next(n for n in broken.graph.node if n.output[0] == first.input[0])
    cast.attribute[0].i = TensorProto.FLOAT
    with pytest.raises(TensorRTCompatibilityError, match="not valid typed ONNX"):
        check_tensorrt_float_types(broken)


def test_bf16_fidelity_emulated_and_as_executed_within_the_budget(bf16_set, digits):
    model, report = bf16_set
    assert report.budget_enforced  # trained weights, real images: the figures mean something
    emulated = report.emulated
    assert emulated.samples == len(report.data.eval) >= 500  # real held-out digits
    assert emulated.top1_drop_points() <= C.DEFAULT_MAX_TOP1_DROP
    assert emulated.max_abs_error > 0  # bfloat16 rounding really happened
    if NATIVE:
        assert report.executed_on in ("openvino", "torch")
        assert report.fidelity.top1_drop_points() <= C.DEFAULT_MAX_TOP1_DROP
        assert report.fidelity.max_abs_error > 0
    else:
        assert report.fidelity is None and "no native BF16" in report.not_executed


def test_the_emulation_rounds_every_bfloat16_activation(bf16_set, digits, tmp_path):
    """Every tensor the artifact holds in bfloat16 is, in the emulation, a bfloat16 value, and
    the kept FP32 ones (LRN's input and output) are not rounded."""
    from onnx import helper

    _, report = bf16_set
    artifact = onnx.load(str(report.output))
    inferred = onnx.shape_inference.infer_shapes(artifact).graph
    held = [v.name for v in inferred.value_info if v.type.tensor_type.elem_type == 16]
    kept = [v.name for v in inferred.value_info if v.type.tensor_type.elem_type == 1]
    emulation = bf16_emulation(artifact)
    emulation.graph.output.extend(
        helper.make_tensor_value_info(name, TensorProto.FLOAT, None) for name in held + kept
    )
    path = tmp_path / "emulation.onnx"
    onnx.save(emulation, str(path))
    import onnxruntime as ort

    options = ort.SessionOptions()  # as the emulation runs: ONNX Runtime's optimizations
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # drop Casts
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    outputs = session.run(held + kept, {"input": digits["heldout_images"][:8]})
    values = dict(zip(held + kept, outputs, strict=True))
    for name in held:
        assert np.array_equal(round_to_bf16(values[name]), values[name]), name
    for lrn in (n for n in artifact.graph.node if n.op_type == "LRN"):  # FP32: not rounded
        assert not np.array_equal(round_to_bf16(values[lrn.output[0]]), values[lrn.output[0]])
    # the emulation of the FP32 model's conversion is the same graph as the artifact's
    converted = bf16_emulation(bf16_model(onnx.load(str(report.model))))
    assert [n.op_type for n in converted.graph.node] == [n.op_type for n in emulation.graph.node]


def test_onnx_runtime_bf16_is_refused_with_the_reason(cli, bf16_set, tmp_path):
    model, report = bf16_set
    before = _snapshot(model.parent)
    result = cli("build", model, "--backend", "ort", "--precision", "bf16",
                 "--work-dir", tmp_path / "work")  # fmt: skip
    assert_clean_failure(result, 2, "no bfloat16 Conv/Gemm kernels", before, [model.parent])
    result = cli("bench", "--model", model, "--backend", "ort", "--precision", "bf16",
                 "--no-roofline", "--work-dir", tmp_path / "work", "--out", tmp_path / "out")  # fmt: skip
    assert_clean_failure(result, 2, "nothing to measure: ort bf16: ONNX Runtime's CPU provider "
                         "has no bfloat16 Conv/Gemm kernels", before, [model.parent])  # fmt: skip
    assert not (tmp_path / "out").exists()
    # the reason holds in the installed onnxruntime: the BF16 artifact does not load on its CPU
    # provider (when a release adds the kernels, this fails and the refusal must go)
    import onnxruntime as ort

    with pytest.raises(Exception, match=r"Could not find an implementation for (Conv|MaxPool)"):
        ort.InferenceSession(str(report.output), providers=["CPUExecutionProvider"])


@pytest.fixture
def cpu_without_bf16(tmp_path, monkeypatch):
    """This process sees an AMD EPYC Zen 3 (AVX2, no BF16), through cpu_isa's cpuinfo file."""
    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\n"
        f"model name\t: AMD EPYC 7B13 64-Core Processor\nflags\t\t: {ZEN3}\n"
    )
    monkeypatch.setattr(cpu_isa, "CPUINFO", info)
    monkeypatch.setattr(cpu_isa.platform, "machine", lambda: "x86_64")
    assert not cpu_isa.this_cpu().bf16_native


def test_bf16_is_refused_on_a_cpu_without_native_bf16(cli, cpu_without_bf16, digits, tmp_path):
    model = tmp_path / "m.onnx"
    shutil.copy(digits["onnx"], model)
    line = f"this CPU (AMD EPYC 7B13 64-Core Processor, class avx2) {REFUSAL}"
    for args in (
        ("bench", "--model", model, "--backend", "openvino,torch", "--precision", "fp32,bf16"),
        ("bench", "--model", model, "--precision", "bf16"),  # every backend available
        ("build", model, "--backend", "openvino", "--precision", "bf16"),
        ("build", model, "--backend", "torch", "--precision", "bf16"),
    ):
        before = _snapshot(tmp_path)
        result = cli(*args, "--work-dir", tmp_path / "work")
        assert_clean_failure(result, 1, line, before, [tmp_path])
        assert not (tmp_path / "work" / "engines").exists()
    # the BF16 artifact is TensorRT's: still made here, judged on its emulated figure alone
    report = convert_bf16(model, DataRequest(data=str(digits["heldout_dir"])))
    assert report.output.is_file() and report.fidelity is None
    assert "no native BF16" in report.not_executed and report.emulated.top1_agreement > 0


def _logits(backend, model, precision, images, work):
    engine, _ = build_engine(model, backend, BuildOptions(precision=precision), work)
    with get_backend(backend).runner(engine) as runner:
        return runner.infer(images), runner.computed()


@needs_bf16
@pytest.mark.parametrize("backend", [pytest.param("openvino", marks=pytest.mark.openvino), "torch"])
def test_bf16_engines_read_back_bf16_and_agree_with_fp32(backend, bf16_set, digits, tmp_path):
    model, _ = bf16_set
    images = digits["heldout_images"][:32]
    reference, ran32 = _logits(backend, model, "fp32", images, tmp_path)
    logits, ran = _logits(backend, model, "bf16", images, tmp_path)
    assert ran32.precision == "fp32" and ran.precision == "bf16", (ran32, ran)
    assert logits.dtype == np.float32 and logits.shape == reference.shape
    assert not np.array_equal(logits, reference)  # it did not run FP32
    assert centered_cosine(reference, logits) > 0.99
    if backend == "openvino":  # OpenVINO names its kernels: AMX tiles or not, as it reports
        assert isinstance(ran.amx, bool) and "runtimePrecision" in ran.source
    assert np.mean(reference.argmax(1) == logits.argmax(1)) >= 1 - C.DEFAULT_MAX_TOP1_DROP / 100


@needs_bf16
@pytest.mark.openvino
def test_rows_say_what_they_computed_in_and_compare_like_with_like(bf16_set, digits, tmp_path):
    """OpenVINO used directly computes the FP32 model in bf16 here: its row says so, it is not
    an fp32 peer, and the gate's ratio sets the tool's bf16 engine against it."""
    from alexnet_deploy import api
    from alexnet_deploy.bench.config import BenchConfig, Matrix, MeasureRules
    from alexnet_deploy.gate.ratios import in_run_ratios
    from alexnet_deploy.gate.reports import load_report

    model, _ = bf16_set
    rules = MeasureRules(warmup_iterations=1, min_iterations=5, min_seconds=0.05, max_seconds=0.1)
    matrix = Matrix(
        backends=("openvino", "openvino-direct", "ort"), precisions=("fp32", "bf16"), batches=(1,)
    )
    run = api.bench(
        model, BenchConfig(matrix, rules), data=str(digits["heldout_dir"]),
        work_dir=tmp_path / "work", out=tmp_path / "report",
    )  # fmt: skip
    rows = {r.label: r for r in run.rows}
    # ort bf16 and openvino-direct bf16 are not measured (refused; its defaults are its fp32 row)
    assert set(rows) == {
        "openvino fp32 b1 latency", "openvino bf16 b1 latency",
        "openvino-direct fp32 b1 latency", "ort fp32 b1 latency",
    }  # fmt: skip
    assert rows["openvino-direct fp32 b1 latency"].computed_label == "fp32 model, ran bf16"
    assert rows["openvino fp32 b1 latency"].computed_label == "fp32"
    assert rows["openvino bf16 b1 latency"].computed_label == "bf16"
    assert rows["ort fp32 b1 latency"].computed_label == "fp32"
    bf16_row = rows["openvino bf16 b1 latency"]
    emulated = bf16_row.fidelity.emulated_top1_agreement
    assert emulated is not None and emulated >= 1 - C.DEFAULT_MAX_TOP1_DROP / 100
    saved = json.loads((tmp_path / "report" / "bench-summary.json").read_text())
    by_label = {(r["backend"], r["precision"]): r for r in saved["rows"]}
    assert by_label[("openvino-direct", "fp32")]["computed_in"] == "bf16"
    assert "computed_in" in (tmp_path / "report" / "bench-summary.csv").read_text().splitlines()[0]
    assert "fp32 model, ran bf16" in (tmp_path / "report" / "bench-summary.md").read_text()
    # the roofline holds each row to the peak of what it computed in: BF16's for both bf16 rows
    ceilings = run.report["ceilings"]
    assert ceilings["bf16_gflops"] > ceilings["fp32_gflops"]
    for label, peak in (("openvino bf16 b1 latency", "bf16_gflops"),
                        ("openvino-direct fp32 b1 latency", "bf16_gflops"),
                        ("openvino fp32 b1 latency", "fp32_gflops")):  # fmt: skip
        roof = rows[label].roofline
        assert roof.gflops / (roof.pct_compute_peak / 100) == pytest.approx(ceilings[peak])
    headline = run.report["comparisons"]["openvino_bf16_vs_openvino_direct b1 latency"]
    assert "openvino-direct (fp32 model, ran bf16" in headline["text"]
    ratios = in_run_ratios(load_report(tmp_path / "report"))
    assert "vs_direct openvino bf16 b1 latency (direct: fp32 model, ran bf16)" in ratios
    assert "vs_direct openvino fp32 b1 latency" not in ratios  # f32 against bf16: not compared
    assert "vs_direct ort fp32 b1 latency" not in ratios  # no ort-direct in this matrix
    # history: a baseline whose OpenVINO defaults ran fp32 (a CPU without BF16) is no baseline
    # for a row that ran bf16: not comparable, saying why; every other row is judged
    from alexnet_deploy.gate.compare import NOT_COMPARABLE, compare_reports
    from alexnet_deploy.gate.thresholds import Thresholds

    baseline = tmp_path / "baseline"
    shutil.copytree(tmp_path / "report", baseline)
    data = json.loads((baseline / "bench-summary.json").read_text())
    for row in data["rows"]:
        if row["backend"] == "openvino-direct":
            row["computed_in"] = "fp32"
    (baseline / "bench-summary.json").write_text(json.dumps(data))
    result = compare_reports(load_report(baseline), load_report(tmp_path / "report"), Thresholds())
    verdicts = {(v.config, v.metric): v for v in result.verdicts}
    direct = verdicts[("openvino-direct fp32 b1 latency", "all")]
    assert direct.verdict == NOT_COMPARABLE and "computed in fp32 in the baseline, bf16 now" in (
        direct.note
    )
    others = [v for (config, _), v in verdicts.items() if config != direct.config]
    assert others and not any("computed in" in v.note for v in others)
