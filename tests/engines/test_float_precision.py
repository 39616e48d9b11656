"""An INT8 engine's float parts in bf16 (issue #28, ``--float-precision bf16``): OpenVINO's
precision hint on the INT8 artifact, on a CPU with native BF16 only (refused on a simulated Zen 3
with cpu_isa's line), refused on every other runtime with the reason; the option only for INT8;
the bench dimension (INT8 rows only, labelled " +bf16", a report column only where set). Real
OpenVINO and ONNX Runtime on the trained digits network."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from alexnet_deploy import cpu_isa
from alexnet_deploy.bench.config import BenchConfig, Matrix
from alexnet_deploy.bench.matrix import expand, supported
from alexnet_deploy.calib.fidelity import centered_cosine
from alexnet_deploy.cases import Case
from alexnet_deploy.engines.build import build_engine
from alexnet_deploy.engines.options import BuildOptions
from alexnet_deploy.engines.registry import get_backend
from alexnet_deploy.errors import UsageError
from tests.test_bf16 import REFUSAL, cpu_without_bf16  # noqa: F401 (a fixture)
from tests.test_faults import _snapshot, assert_clean_failure

needs_bf16 = pytest.mark.skipif(
    not cpu_isa.this_cpu().bf16_native,
    reason=f"this CPU (class {cpu_isa.this_cpu().name}) has no native BF16: bf16 float parts are "
    "refused here (the refusal is tested on a simulated CPU below)",
)
ORT_REASON = (
    "backend 'ort' cannot run an INT8 engine's float parts in bf16: ONNX Runtime's CPU provider "
    "has no bfloat16 Conv/Gemm kernels"
)


def test_float_precision_is_an_int8_option_and_keeps_old_engine_keys():
    assert BuildOptions(precision="int8", float_precision="bf16").key() != BuildOptions(
        precision="int8"
    ).key()
    with pytest.raises(UsageError, match="--float-precision bf16 sets an INT8 engine's float"):
        BuildOptions(precision="fp32", float_precision="bf16")
    with pytest.raises(UsageError, match="unknown --float-precision 'fp16'"):
        BuildOptions(precision="int8", float_precision="fp16")
    case = Case("openvino", "int8", 32, "throughput", streams=2, float_precision="bf16")
    assert case.label == "openvino int8 +bf16 b32 throughput s2"
    assert case.key()["float_precision"] == "bf16" and "static" not in case.key()
    assert Case.from_row(case.key()) == case
    nncf = case.but(quantizer="nncf", static=True)
    assert nncf.label == "openvino int8 (nncf) +bf16 b32 static throughput s2"


@needs_bf16
@pytest.mark.openvino
def test_openvino_runs_an_int8_engines_float_parts_in_bf16(digits_artifacts):
    model, work = digits_artifacts["model"], digits_artifacts["work"]
    images = np.ascontiguousarray(digits_artifacts["heldout_images"][:32], dtype=np.float32)
    plain, _ = build_engine(model, "openvino", BuildOptions(precision="int8"), work)
    bf16, _ = build_engine(
        model, "openvino", BuildOptions(precision="int8", float_precision="bf16"), work
    )
    assert bf16.path.parent != plain.path.parent
    assert bf16.sidecar.float_precision == "bf16" and plain.sidecar.float_precision is None
    assert bf16.sidecar.details["config"]["INFERENCE_PRECISION_HINT"] == "bf16"
    assert plain.sidecar.details["config"]["INFERENCE_PRECISION_HINT"] == "f32"
    assert "bfloat16" in bf16.sidecar.details["inference_precision"]  # as OpenVINO reads back
    assert json.loads(bf16.sidecar_path.read_text())["float_precision"] == "bf16"
    runner = get_backend("openvino").runner
    with runner(plain) as r:
        reference = r.infer(images)
    with runner(bf16) as r:
        logits, ran = r.infer(images), r.computed()
    assert ran.precision == "int8" and "hint bf16" in ran.source  # weighted layers stay INT8
    assert not np.array_equal(logits, reference)  # the float parts did not run FP32
    assert logits.dtype == np.float32 and logits.shape == reference.shape
    assert centered_cosine(reference, logits) > 0.99
    assert np.mean(reference.argmax(1) == logits.argmax(1)) >= 0.9


def test_bf16_float_parts_are_refused_on_a_cpu_without_native_bf16(
    cli, cpu_without_bf16, digits_artifacts, tmp_path  # noqa: F811
):
    model = digits_artifacts["model"]
    line = f"this CPU (AMD EPYC 7B13 64-Core Processor, class avx2) {REFUSAL}"
    work = tmp_path / "work"
    for args in (
        ("build", model, "--backend", "openvino", "--precision", "int8",
         "--float-precision", "bf16"),
        ("bench", "--model", model, "--backend", "openvino", "--precision", "int8",
         "--float-precision", "bf16", "--out", tmp_path / "out"),
    ):  # fmt: skip
        before = _snapshot(tmp_path)
        result = cli(*args, "--work-dir", work)
        assert_clean_failure(result, 1, line, before, [tmp_path])
        assert not (work / "engines").exists() and not (tmp_path / "out").exists()
    with pytest.raises(Exception, match="has no native BF16"):
        Matrix(precisions=("int8",), float_precisions=("bf16",))


def test_other_runtimes_refuse_bf16_float_parts_with_the_reason(cli, digits_artifacts, tmp_path):
    model = digits_artifacts["model"]
    before = _snapshot(tmp_path)
    for args, code, line in (
        (("--backend", "ort", "--precision", "int8", "--float-precision", "bf16"), 2, ORT_REASON),
        (("--backend", "torch", "--precision", "fp32", "--float-precision", "bf16"), 2,
         "--float-precision bf16 sets an INT8 engine's float parts; this is --precision fp32"),
    ):  # fmt: skip
        result = cli("build", model, *args, "--work-dir", tmp_path / "work")
        assert_clean_failure(result, code, line, before, [tmp_path])
    assert supported(Case("ort", "int8", 1, "latency", float_precision="bf16")) == (
        ORT_REASON.split(": ", 1)[0] + ": " + get_backend("ort").refuses["bf16"]
    )
    assert "runs the float types the file holds" in supported(
        Case("tensorrt", "int8", 1, "latency", float_precision="bf16")
    )


def test_the_float_precision_dimension_multiplies_int8_cases_only():
    matrix = Matrix(precisions=("fp32", "int8"), batches=(1,), float_precisions=(None, "bf16"))
    cases = expand(BenchConfig(matrix), ["openvino", "openvino-direct"])
    assert [c.label for c in cases] == [
        "openvino fp32 b1 latency",
        "openvino int8 b1 latency",
        "openvino int8 +bf16 b1 latency",
        "openvino-direct fp32 b1 latency",
        "openvino-direct int8 b1 latency",  # a runtime used directly: the file's own floats
    ]


@needs_bf16
@pytest.mark.openvino
def test_bench_float_precision_rows_and_report_columns(cli, digits_artifacts, tmp_path):
    # a private copy: bench calibrates for its --data beside the model it is given, and the
    # session's artifacts were calibrated for another request (test_faults_answers checks it)
    model = tmp_path / "model" / "digits-tiny.onnx"
    model.parent.mkdir()
    for path in digits_artifacts["model"].parent.glob("digits-tiny*"):
        shutil.copy(path, model.parent / path.name)
    result = cli(
        "bench", "--model", model, "--data", digits_artifacts["heldout_dir"],
        "--backend", "openvino,ort", "--precision", "int8", "--batch", "2",
        "--float-precision", "bf16", "--no-roofline", "--max-seconds", "0.05",
        "--min-seconds", "0.02", "--work-dir", tmp_path / "work", "--out", tmp_path / "out",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    report = json.loads((tmp_path / "out" / "bench-summary.json").read_text())
    (row,) = report["rows"]
    assert row["backend"] == "openvino" and row["float_precision"] == "bf16"
    assert row["status"] == "ok" and "static" not in row
    assert "openvino int8 +bf16 b2 latency" in (tmp_path / "out" / "bench-summary.md").read_text()
    assert {"what": "ort int8 +bf16 b2 latency", "reason": ORT_REASON.split(": ", 1)[0] + ": "
            + get_backend("ort").refuses["bf16"]} in report["not_measured"]  # fmt: skip
