"""Engines compiled for one static batch (issue #28): ONNX Runtime's free-dimension override,
OpenVINO's reshape, TensorRT's profile N:N:N, PyTorch refused; any other batch refused with one
line, never padded; the sidecar records the shape; bench's rows and reports carry "static" (old
reports read as dynamic); Triton serves a static model unbatched. Real ONNX Runtime and
OpenVINO sessions on the trained digits network."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from alexnet_deploy.bench.config import BenchConfig, Matrix, MeasureRules, config_from_toml
from alexnet_deploy.bench.matrix import expand, served_refusal
from alexnet_deploy.cases import Case
from alexnet_deploy.engines.build import build_engine
from alexnet_deploy.engines.options import BuildOptions
from alexnet_deploy.engines.registry import get_backend
from alexnet_deploy.errors import UsageError
from tests.test_faults import _snapshot, assert_clean_failure

RECORDED = Path(__file__).resolve().parents[2] / "docs" / "benchmarks"
BACKENDS = ["ort", pytest.param("openvino", marks=pytest.mark.openvino)]
REFUSAL = "was compiled for a static batch of 4; got 3"


def test_static_batch_options_are_checked_and_keep_old_engine_keys():
    assert BuildOptions(static_batch=64, max_batch=32).max_batch == 64  # raised to it
    assert BuildOptions(static_batch=4, max_batch=32).max_batch == 4  # its one batch
    # one engine, one key, whatever --max-batch was given beside it
    assert BuildOptions(static_batch=4).key() == BuildOptions(static_batch=4, max_batch=8).key()
    assert BuildOptions(static_batch=32).key() != BuildOptions(max_batch=32).key()
    assert "static_batch" not in json.dumps(Case("ort", "fp32", 32, "latency").key())
    with pytest.raises(UsageError, match="--static-batch must be at least 1, got 0"):
        BuildOptions(static_batch=0)
    with pytest.raises(UsageError, match="--static-batch 8 and --batch 1:4:8 both set"):
        BuildOptions(static_batch=8, batch_profile="1:4:8")


def test_tensorrt_plans_a_static_batch_as_one_profile_shape():
    from alexnet_deploy.engines.ort import trt_ep_options
    from alexnet_deploy.engines.tensorrt_api import default_profile

    profile = default_profile(BuildOptions(static_batch=8, max_batch=64))
    assert str(profile) == "8:8:8"
    assert profile.shapes((3, 32, 32)) == ((8, 3, 32, 32),) * 3
    options = trt_ep_options("fp32", "input", (3, 32, 32), (profile.min, profile.opt, profile.max))
    assert {options[f"trt_profile_{w}_shapes"] for w in ("min", "opt", "max")} == {
        "input:8x3x32x32"
    }


def _engine(model, backend, work, **options):
    return build_engine(model, backend, BuildOptions(**options), work)[0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_static_engine_runs_its_batch_and_refuses_any_other(backend, digits_artifacts):
    model, work = digits_artifacts["model"], digits_artifacts["work"]
    images = np.ascontiguousarray(digits_artifacts["heldout_images"][:4], dtype=np.float32)
    static = _engine(model, backend, work, static_batch=4)
    dynamic = _engine(model, backend, work, max_batch=8)
    assert static.path.parent != dynamic.path.parent  # keyed apart
    assert static.sidecar.input_shape == [4, 3, 32, 32]
    assert dynamic.sidecar.input_shape == [None, 3, 32, 32]
    side = json.loads(static.sidecar_path.read_text())
    assert side["input_shape"] == [4, 3, 32, 32] and side["options"]["static_batch"] == 4
    runner_of = get_backend(backend).runner
    with runner_of(dynamic) as r:
        expected = r.infer(images)
    with runner_of(static) as r:
        np.testing.assert_allclose(r.infer(images), expected, rtol=1e-4, atol=1e-4)
        for wrong in (3, 5):
            with pytest.raises(UsageError) as refused:
                r.infer(np.ascontiguousarray(np.resize(images, (wrong, 3, 32, 32))))
            assert str(refused.value) == (
                f"engine {static.path} was compiled for a static batch of 4; got {wrong} "
                "(hint: send batches of 4, or build without --static-batch (a dynamic 1..N range))"
            )
        (worker,) = r.workers(1)  # the concurrent path checks it too
        with pytest.raises(UsageError, match=REFUSAL):
            worker(images[:3])
    if backend == "ort":  # the saved graph itself takes batch 4 alone
        dims = onnx.load(str(static.path)).graph.input[0].type.tensor_type.shape.dim
        assert [d.dim_value for d in dims] == [4, 3, 32, 32]
        assert static.sidecar.details["free_dimension_override"] == {"batch": 4}
    else:  # what OpenVINO compiled
        assert static.sidecar.details["compiled_input_shape"] == "[4,3,32,32]"
        assert dynamic.sidecar.details["compiled_input_shape"] == "[1..8,3,32,32]"


def test_predict_refuses_a_static_engine_before_decoding_an_image(digits_artifacts, tmp_path):
    from alexnet_deploy.onnx_model import read_artifact
    from alexnet_deploy.predict import classify_with

    model = digits_artifacts["model"]
    engine = _engine(model, "ort", digits_artifacts["work"], static_batch=4)
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")  # decoding it would be an error row, not a refusal
    with pytest.raises(UsageError, match="predict classifies one image at a time") as refused:
        classify_with(engine, "ort", read_artifact(model), [broken])
    assert f"engine {engine.path} was compiled for a static batch of 4; got 1" in str(refused.value)


def test_an_unnamed_batch_axis_is_refused_by_onnx_runtime(digits, tmp_path):
    model = onnx.load(str(digits["onnx"]))
    for value in (*model.graph.input, *model.graph.output):
        value.type.tensor_type.shape.dim[0].ClearField("dim_param")  # unnamed, still dynamic
    path = tmp_path / "unnamed.onnx"
    onnx.save(model, str(path))
    with pytest.raises(Exception, match="has no name, and ONNX Runtime fixes a static batch"):
        _engine(path, "ort", tmp_path / "work", static_batch=4)
    assert not list((tmp_path / "work" / "engines").rglob("engine.json"))


def test_build_cli_static_batch_and_its_refusals(cli, digits, tmp_path):
    model = tmp_path / "m.onnx"
    shutil.copy(digits["onnx"], model)
    work = tmp_path / "work"
    result = cli("build", model, "--backend", "ort", "--static-batch", "4", "--work-dir", work)
    assert result.exit_code == 0, result.stderr
    assert "static batch: input [4, 3, 32, 32]" in result.stdout
    before = _snapshot(tmp_path)
    for args, code, line in (
        (("--backend", "torch", "--static-batch", "4"), 2,
         "backend 'torch' cannot build a static batch: an eager PyTorch model has no compiled "
         "shape"),
        (("--backend", "ort", "--static-batch", "0"), 2, "--static-batch"),
        (("--backend", "ort", "--static-batch", "4", "--batch", "1:2:4"), 2,
         "--static-batch 4 and --batch 1:2:4 both set the engine's batch"),
    ):  # fmt: skip
        result = cli("build", model, *args, "--work-dir", work)
        assert_clean_failure(result, code, line, before, [tmp_path])


def test_static_and_dynamic_rows_are_kept_apart_from_bench_to_the_gate(
    cli, digits_model, digits, tmp_path
):
    """A TOML matrix of both (statics = [false, true]): two engine rows, labelled apart, a
    report column only where static, the gate's loader reading each row's samples alone, and
    each engine row's in-run ratio against ONNX Runtime used directly (its own dynamic range).
    Batch 3 does not divide the fidelity images: the static engine's last chunk is filled and
    cut."""
    from alexnet_deploy.gate.ratios import in_run_ratios
    from alexnet_deploy.gate.reports import load_report
    from alexnet_deploy.workflow import ModelRequest, bench_model

    toml = tmp_path / "bench.toml"
    toml.write_text('[matrix]\nbackends = ["ort", "ort-direct"]\nprecisions = ["fp32"]\nbatches = [3]\n'
                    "statics = [false, true]\n")  # fmt: skip
    config = config_from_toml(toml)
    assert config.matrix.statics == (False, True)
    rules = MeasureRules(warmup_iterations=1, warmup_seconds=0.01, min_iterations=10,
                         min_seconds=0.05, max_seconds=0.1, repeat=2)  # fmt: skip
    request = ModelRequest(model=digits_model, data=str(digits["heldout_dir"]))
    _, result, paths = bench_model(
        request, BenchConfig(config.matrix, rules), tmp_path / "work", tmp_path / "out"
    )
    labels = sorted(r.label for r in result.rows)
    assert labels == [
        "ort fp32 b3 latency", "ort fp32 b3 static latency", "ort-direct fp32 b3 latency"
    ], result.failed  # fmt: skip
    assert all(r.ok for r in result.rows), result.failed
    static_row = next(r for r in result.rows if r.case.static)
    dynamic_row = next(r for r in result.rows if r.label == "ort fp32 b3 latency")
    assert static_row.engine.engine != dynamic_row.engine.engine  # two engines
    fidelity, reference = static_row.fidelity, dynamic_row.fidelity
    assert fidelity.samples == reference.samples and fidelity.samples % 3  # a short last chunk
    assert fidelity.top1_agreement == reference.top1_agreement == 1.0
    rows = json.loads(paths["json"].read_text())["rows"]
    assert [row.get("static") for row in rows] == [None if not r.case.static else True
                                                   for r in result.rows]  # fmt: skip
    loaded = load_report(paths["json"])
    assert set(loaded.rows) == {r.case for r in result.rows}
    assert {name for name in in_run_ratios(loaded) if name.startswith("vs_direct")} == {
        "vs_direct ort fp32 b3 latency", "vs_direct ort fp32 b3 static latency"
    }  # fmt: skip
    for row in result.rows:  # each row's own samples, not both rows' merged
        back, measured = loaded.samples[row.case], result.samples_of(row.case)
        assert len(back) == len(measured) == 2
        assert all(np.array_equal(a, b) for a, b in zip(back, measured, strict=True))


def test_bench_static_flag_labels_rows_and_leaves_out_what_cannot_be_static(
    cli, digits_model, digits, tmp_path
):
    result = cli(
        "bench", "--model", digits_model, "--data", digits["heldout_dir"], "--backend",
        "ort,torch,ort-direct", "--precision", "fp32", "--batch", "3", "--static",
        "--no-roofline", "--max-seconds", "0.05", "--min-seconds", "0.02",
        "--work-dir", tmp_path / "work", "--out", tmp_path / "out", "--format", "json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    report = json.loads((tmp_path / "out" / "bench-summary.json").read_text())
    rows = {(r["backend"], r.get("static", False)): r for r in report["rows"]}
    # the engine is compiled for batch 3; a runtime used directly keeps its own defaults
    assert set(rows) == {("ort", True), ("ort-direct", False)}
    assert rows[("ort", True)]["status"] == "ok"
    assert "ort fp32 b3 static latency" in (tmp_path / "out" / "bench-summary.md").read_text()
    left_out = json.dumps(report.get("not_measured"))
    assert "torch fp32 b3 static latency" in left_out
    assert "an eager PyTorch model has no compiled shape" in left_out


def test_the_static_dimension_and_its_toml_form():
    cases = expand(BenchConfig(Matrix(precisions=("fp32",), batches=(1, 8),
                                      statics=(False, True))), ["ort", "ort-direct"])  # fmt: skip
    assert [c.label for c in cases] == [
        "ort fp32 b1 latency", "ort fp32 b1 static latency",
        "ort fp32 b8 latency", "ort fp32 b8 static latency",
        "ort-direct fp32 b1 latency", "ort-direct fp32 b8 latency",
    ]  # fmt: skip
    with pytest.raises(UsageError, match=r"statics must be a non-empty list of False, True"):
        Matrix(statics=(True, True))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[matrix]\nstatics = [1]\n", r"\[matrix\] statics = \[1\]: expected a list of true or "
         r"false \(hint: e.g. statics = \[false, true\]\)"),
        ('[matrix]\nfloat_precisions = ["fp16"]\n', "float_precisions must be a non-empty list "
         r"of fp32, bf16 without duplicates, got \['fp16'\]"),
    ],
)  # fmt: skip
def test_toml_statics_and_float_precisions_are_checked(tmp_path, text, message):
    path = tmp_path / "bench.toml"
    path.write_text(text)
    with pytest.raises(UsageError, match=message):
        config_from_toml(path)


def test_an_old_report_reads_as_dynamic_and_keeps_its_keys():
    from alexnet_deploy.bench.records import BenchRow
    from alexnet_deploy.gate.reports import load_report

    path = RECORDED / "main" / "bench-summary.json"
    loaded = load_report(path)
    assert loaded.rows and all(
        not c.static and c.float_precision is None for c in loaded.rows
    )
    rows = json.loads(path.read_text())["rows"]
    for columns in rows:
        key = BenchRow.from_columns(columns).case.key()
        assert "static" not in key and "float_precision" not in key
        assert key == {k: columns.get(k, "qdq" if k == "quantizer" else None) for k in key}
    first = Case.from_row(rows[0])
    batch = f" b{first.batch} "
    assert first.but(static=True).label == first.label.replace(batch, f"{batch}static ")


def test_a_served_model_of_one_batch_refuses_the_others():
    from alexnet_deploy.serve.triton_client import Endpoint, ServedModel

    served = ServedModel(Endpoint("http", "h:1"), "m", "input", "logits", (3, 32, 32), 0, 4)
    assert served_refusal(served, 4) is None
    assert served_refusal(served, 2) == (
        "the served model m takes batch 4 only (max_batch_size 0, input [4, 3, 32, 32])"
    )
    batched = ServedModel(Endpoint("http", "h:1"), "m", "input", "logits", (3, 32, 32), 32)
    assert served_refusal(batched, 2) is None


def test_a_static_model_gets_an_unbatched_triton_config(cli, digits_artifacts, tmp_path):
    pytest.importorskip("tritonclient.grpc", reason="tritonclient is not installed")
    from alexnet_deploy.serve.triton_config import parse_config

    repo = tmp_path / "repo"
    result = cli(
        "package", "--triton", repo, "--model", digits_artifacts["model"], "--static-batch",
        "4", "--work-dir", tmp_path / "work", "--no-openvino",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    configs = sorted(repo.glob("*/config.pbtxt"))
    assert configs
    for path in configs:
        config = parse_config(path.read_text())
        assert config.max_batch_size == 0 and not config.HasField("dynamic_batching")
        assert list(config.input[0].dims) == [4, 3, 32, 32]
        assert list(config.output[0].dims) == [4, 10]


def test_a_static_tensorrt_plan_is_packaged_from_its_sidecar(cli, digits_artifacts, tmp_path):
    """Config and sidecar agree: a plan built for batch 4 (profile 4:4:4) is served at 4,
    unbatched; a sidecar that contradicts itself is refused and nothing is written."""
    pytest.importorskip("tritonclient.grpc", reason="tritonclient is not installed")
    from alexnet_deploy.artifacts import ArtifactSet
    from alexnet_deploy.serve.triton_config import parse_config
    from tests.serve.test_package import _trt_engine

    model = digits_artifacts["model"]
    engine_dir = _trt_engine(tmp_path / "work", "tensorrt-fp16-s4", ArtifactSet(model).fp16,
                             profile="4:4:4")  # fmt: skip
    side_path = engine_dir / "engine.json"
    side = json.loads(side_path.read_text())
    side["options"] = BuildOptions(precision="fp16", static_batch=4).as_dict()
    side["input_shape"] = [4, 3, 32, 32]
    side_path.write_text(json.dumps(side))
    args = ("--model", model, "--work-dir", tmp_path / "work", "--no-openvino")
    result = cli("package", "--triton", tmp_path / "repo", *args)
    assert result.exit_code == 0, result.stderr
    config = parse_config((tmp_path / "repo" / "alexnet_digits_tiny_fp16_trt" / "config.pbtxt")
                          .read_text())  # fmt: skip
    assert config.platform == "tensorrt_plan" and config.max_batch_size == 0
    assert list(config.input[0].dims) == side["input_shape"]
    onnx_config = parse_config((tmp_path / "repo" / "alexnet_digits_tiny_fp16_onnx" /
                                "config.pbtxt").read_text())  # fmt: skip
    assert onnx_config.max_batch_size > 0  # without --static-batch the ONNX models stay batched
    side["input_shape"] = [8, 3, 32, 32]  # disagrees with its options and profile
    side_path.write_text(json.dumps(side))
    before = _snapshot(tmp_path / "work")
    result = cli("package", "--triton", tmp_path / "repo2", *args)
    assert_clean_failure(result, 1, "disagrees with itself: static batch 4, input shape [8, 3, "
                         "32, 32], profile '4:4:4'", before, [tmp_path / "work"])  # fmt: skip
    assert not (tmp_path / "repo2").exists()
