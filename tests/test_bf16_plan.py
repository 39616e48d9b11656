"""bf16 as a per-layer choice (issue #25): compare of the BF16 artifact layer by layer (emulated,
and OpenVINO's bf16), plan with --keep bf16 on OpenVINO (its float layers in bf16 through the
precision hint, INT8 layers INT8; emulated and as executed) and its refusals, tune searching bf16
beside INT8 and build --tuned reproducing the choice, bench holding bf16 rows to the budget, the
AMX ceiling chosen from the row's read-back, and the refusals on a CPU without native BF16
(simulated through cpuinfo). Real ONNX Runtime, OpenVINO and PyTorch on the trained digits
network; timing runs are the shortest bench's rules allow (speed is never asserted)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest

from alexnet_deploy import constants as C
from alexnet_deploy import cpu_isa
from alexnet_deploy.calib.bf16 import PLAN_KEEP, emulated_logits, plan_bf16_layers
from alexnet_deploy.calib.fidelity import compare_logits
from alexnet_deploy.engines.build import build_engine
from alexnet_deploy.engines.options import BuildOptions
from alexnet_deploy.engines.registry import get_backend
from alexnet_deploy.onnx_model import read_artifact
from alexnet_deploy.precision.compare import compare_artifacts
from tests import test_bf16
from tests.test_bf16 import NATIVE, REFUSAL, needs_bf16
from tests.test_cpu_isa import SAPPHIRE_RAPIDS, ZEN4
from tests.test_faults import _snapshot, assert_clean_failure

# fixtures shared with the BF16 artifact's tests: the trained network's BF16 artifact, and a
# process that sees a CPU without native BF16 (cpuinfo simulated)
bf16_set = test_bf16.bf16_set
cpu_without_bf16 = test_bf16.cpu_without_bf16

FAST = ("--repeat", "1", "--batch", "1", "--min-seconds", "0.05", "--max-seconds", "0.1")
BUDGET = 1 - C.DEFAULT_MAX_TOP1_DROP / 100  # the top-1 agreement floor of the budget


def test_compare_of_the_bf16_artifact_layer_by_layer(bf16_set, digits, cli, tmp_path):
    """Before: a traceback (ONNX Runtime cannot load a bfloat16 Conv). Now: every layer of the
    artifact, its tensors rounded to bfloat16 (emulated); OpenVINO's bf16 where the CPU has it;
    ONNX Runtime refused with the reason."""
    model, report = bf16_set
    data = str(digits["heldout_dir"])
    emulated = compare_artifacts(model, report.output, data, count=32, runtime="emulated")
    convs = [x for x in emulated.layers if x.op in ("Conv", "Gemm")]
    assert len(convs) == 8 and {x.name for x in convs} >= {"conv2d", "logits"}
    for layer in emulated.layers:  # rounded (an error), never broken (a tiny one)
        assert layer.max_abs_error > 0 and layer.cosine > 0.9999, layer
        assert layer.clip_rate is None  # no quantizer: no clipping
    assert emulated.logits["top1_agreement"] >= BUDGET
    if NATIVE:  # OpenVINO's bf16 on the FP32 model: other kernels, other roundings
        executed = compare_artifacts(model, report.output, data, count=32, runtime="openvino")
        assert [x.name for x in executed.layers] == [x.name for x in emulated.layers]
        assert all(x.max_abs_error > 0 for x in executed.layers)  # it did not run FP32
        assert executed.logits["top1_agreement"] >= BUDGET
        differs = [
            a.name
            for a, b in zip(emulated.layers, executed.layers, strict=True)
            if a.max_abs_error != b.max_abs_error
        ]
        assert differs  # computed by OpenVINO, not a copy of the emulation
    before = _snapshot(model.parent)
    result = cli("compare", model, report.output, "--data", data, "--runtime", "ort")
    assert_clean_failure(result, 2, "no bfloat16 Conv/Gemm kernels", before, [model.parent])
    assert "--runtime emulated" in result.stderr  # the hint names what does run it


def _plan(cli, model, digits, out, work, *extra):
    return cli(
        "plan", model, "--data", digits["train_dir"], "--eval-data", digits["heldout_dir"],
        "--calib-size", "64", "--eval-size", "256", "--keep-layer", "conv2d",
        "--max-candidates", "2", *FAST, "-o", out, "--work-dir", work, *extra,
    )  # fmt: skip


@needs_bf16
@pytest.mark.openvino
def test_plan_keep_bf16_on_openvino(digits_model, digits, cli, tmp_path):
    """Float layers in bf16 through OpenVINO's hint on the plan's file, INT8 layers INT8: timed
    beside all-FP32 and all-BF16, each bf16 plan judged emulated and as executed; the file
    written says what its float layers run in, and OpenVINO's engine of it computes that."""
    out, work = tmp_path / "out", tmp_path / "work"
    result = _plan(cli, digits_model, digits, out, work, "--keep", "bf16")
    assert result.exit_code == 0, result.stderr
    report = json.loads((out / "plan.json").read_text())
    assert report["keep"] == "bf16" and "as executed" in report["judged_on"]
    refs = {r["plan"]: r for r in report["references"]}
    assert set(refs) == {"all-FP32", "all-BF16"}
    timed = [p for p in report["plans"] if p["images_per_s"]]
    assert timed and all(next(iter(p["images_per_s"])).startswith("openvino") for p in timed)
    for entry in [*timed, refs["all-BF16"]]:  # bf16's figures as the engine timed ran them
        assert entry["executed_on"] == "openvino", entry["plan"]
        assert entry["executed"]["top1_agreement"] >= BUDGET
    mixed = [p for p in timed if set(p["precisions"].values()) == {"int8", "bf16"}]
    assert mixed and all(p["precisions"]["conv2d"] == "bf16" for p in mixed)
    written = read_artifact(out / "digits-tiny.plan-cpu.onnx").metadata
    chosen = report["chosen"]
    kept = "fp32" if chosen["plan"] == "all-FP32" else "bf16"
    assert written[PLAN_KEEP] == kept
    assert json.loads(written["precision_plan"]) == chosen["precisions"]
    engine, _ = build_engine(out / "digits-tiny.plan-cpu.onnx", "openvino", BuildOptions(
        precision=written["precision"]), work)  # fmt: skip
    with get_backend("openvino").runner(engine) as runner:
        ran = set(runner.computed().precision.split("+"))
    assert ran == {"fp32"} if kept == "fp32" else ("bf16" in ran and "fp32" not in ran), ran
    # the emulation rounds a plan's bf16 layers: a plan file with conv2d float, run in fp32
    # and in bf16 (its metadata alone differs), gives other logits, within the budget
    mixed_file = tmp_path / "mixed.onnx"
    proto = onnx.load(str(out / "digits-tiny.plan-cpu.onnx"))
    plan = {name: "int8" for name in chosen["precisions"]} | {"conv2d": "fp32"}
    _set_metadata(proto, {"precision_plan": json.dumps(plan), PLAN_KEEP: "fp32"})
    onnx.save(proto, str(mixed_file))
    images = digits["heldout_images"][:64]
    as_fp32 = emulated_logits(mixed_file, "input", images, 16)
    _set_metadata(proto, {"precision_plan": json.dumps(plan | {"conv2d": "bf16"}),
                          PLAN_KEEP: "bf16"})  # fmt: skip
    onnx.save(proto, str(mixed_file))
    assert plan_bf16_layers(read_artifact(mixed_file).metadata) == {"conv2d"}
    as_bf16 = emulated_logits(mixed_file, "input", images, 16)
    assert not np.array_equal(as_fp32, as_bf16)  # bf16 rounding happened
    assert compare_logits(as_fp32, as_bf16).top1_agreement >= BUDGET


def _set_metadata(proto, values: dict) -> None:
    from alexnet_deploy.calib.stage import write_artifact_metadata

    write_artifact_metadata(proto, values)


def test_plan_keep_bf16_is_refused_on_ort_and_for_tensorrt(digits_model, digits, cli, tmp_path):
    out, work = tmp_path / "out", tmp_path / "work"
    before = _snapshot(digits_model.parent)
    result = _plan(cli, digits_model, digits, out, work, "--keep", "bf16", "--backend", "ort")
    assert_clean_failure(result, 2, "--keep bf16 cannot be timed on ort", before,
                         [digits_model.parent])  # fmt: skip
    assert "no bfloat16 Conv/Gemm kernels" in result.stderr and not out.exists()
    result = _plan(cli, digits_model, digits, out, work, "--keep", "bf16", "--target", "tensorrt")
    assert_clean_failure(result, 2, "not planned for --target tensorrt", before,
                         [digits_model.parent])  # fmt: skip
    assert not out.exists()


def test_a_bf16_plan_file_builds_on_openvino_alone(digits, cli, tmp_path):
    """A plan file's float layers are FP32 as written: ONNX Runtime would run them in FP32
    while the plan says bf16, so its build is refused (OpenVINO's: the test above)."""
    proto = onnx.load(str(digits["onnx"]))  # the all-float plan: the FP32 graph
    names = [n.output[0] for n in proto.graph.node if n.op_type in ("Conv", "Gemm")]
    _set_metadata(proto, {PLAN_KEEP: "bf16", "precision_plan": json.dumps(
        dict.fromkeys(names, "bf16"))})  # fmt: skip
    bf16_file = tmp_path / "bf16-plan.onnx"
    onnx.save(proto, str(bf16_file))
    assert plan_bf16_layers(read_artifact(bf16_file).metadata) == set(names)
    before = _snapshot(tmp_path)
    result = cli("build", bf16_file, "--backend", "ort", "--work-dir", tmp_path / "work")
    assert_clean_failure(result, 2, "ort would compute them in FP32", before, [tmp_path])
    assert "no bfloat16 Conv/Gemm kernels" in result.stderr


def test_bf16_refused_in_plan_and_compare_on_a_cpu_without_bf16(
    cli, cpu_without_bf16, bf16_set, digits, tmp_path
):
    from alexnet_deploy.bench.tune import default_precisions

    model, report = bf16_set
    line = f"this CPU (AMD EPYC 7B13 64-Core Processor, class avx2) {REFUSAL}"
    before = _snapshot(model.parent)
    result = _plan(cli, model, digits, tmp_path / "out", tmp_path / "w", "--keep", "bf16")
    assert_clean_failure(result, 1, line, before, [model.parent])
    assert not (tmp_path / "out").exists()
    result = cli("compare", model, report.output, "--data", digits["heldout_dir"],
                 "--runtime", "openvino")  # fmt: skip
    assert_clean_failure(result, 1, line, before, [model.parent])
    # tune searches bf16 only where this CPU computes it natively
    assert default_precisions(("ort", "openvino")) == ("int8",)
    result = cli("tune", "--model", model, "--precision", "bf16", "--backend", "openvino",
                 "--work-dir", tmp_path / "w")  # fmt: skip
    assert_clean_failure(result, 1, line, before, [model.parent])


@needs_bf16
@pytest.mark.openvino
def test_tune_searches_bf16_and_build_tuned_reproduces_the_choice(digits, cli, tmp_path):
    from dataclasses import replace

    from alexnet_deploy.artifacts import WorkDir
    from alexnet_deploy.bench.direct_tput import documented_precision
    from alexnet_deploy.bench.tune import default_precisions, tuned_choice, tuned_matrix_flags
    from alexnet_deploy.cases import Case

    model = tmp_path / "m.onnx"
    shutil.copy(digits["onnx"], model)
    assert default_precisions(("ort", "openvino")) == ("int8", "bf16")
    assert default_precisions(("ort",)) == ("int8",)  # no bf16 kernels there
    work, tuned = tmp_path / "work", tmp_path / "tuned.json"
    result = cli(
        "tune", "--model", model, "--data", digits["heldout_dir"], "--backend", "openvino",
        "--batch", "1", "--streams", "1", "--quantizer", "qdq", "--min-seconds", "0.05",
        "--max-seconds", "0.1", "--no-direct", "--no-roofline", "-o", tuned, "--work-dir", work,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    saved = json.loads((WorkDir(work).tune_reports / "bench-summary.json").read_text())
    ok = [r for r in saved["rows"] if r.get("status", "ok") == "ok"]
    rows = {r["precision"]: r for r in ok if r.get("static") and not r.get("float_precision")}
    assert set(rows) == {"int8", "bf16"}  # both stage-1 candidates measured, neither failed
    assert rows["bf16"]["computed_in"] == "bf16"
    for basis in ("top1_agreement", "emulated_top1_agreement"):  # held to the same floor
        assert rows["bf16"][basis] >= BUDGET
    choice = tuned_choice(tuned)
    # the constraint, then the best median of the confirm stage's interleaved rounds
    finalists = json.loads(tuned.read_text())["search"]["stages"]["confirm"]
    feasible = [
        r for r in ok if Case.from_row(r).label in finalists and r["top1_agreement"] >= BUDGET
    ]
    fastest = max(feasible, key=lambda r: np.median(r["round_images_per_s"]))
    assert (choice.precision, choice.backend) == (fastest["precision"], "openvino"), rows
    # bench --tuned: the tuned engine's precision; beside it, the runtimes used directly run
    # the FP32 model for a bf16 engine (they run no bf16 row of their own), INT8 for INT8
    for precision, peers in (("bf16", "fp32"), ("int8", "int8")):
        flags = tuned_matrix_flags(replace(choice, precision=precision), {})
        assert flags["precisions"] == (precision,)
        assert documented_precision(flags["precisions"]) == peers
    result = cli("build", model, "--tuned", tuned, "--work-dir", work)
    assert result.exit_code == 0, result.stderr
    sidecar = next((work / "engines").glob(f"openvino-{choice.precision}-*/engine.json"))
    assert json.loads(sidecar.read_text())["details"]["computed_in"].startswith(choice.precision)


@needs_bf16
@pytest.mark.openvino
def test_bench_bf16_rows_report_both_figures_and_are_held_to_the_budget(
    digits_model, digits, tmp_path
):
    """Every bf16 row carries its fidelity as executed and emulated; a bf16 row whose figure
    misses the budget is not measured and says why (here against a reference whose top-1 was
    flipped on one image: the budget's arithmetic, on a real engine), an fp32 row is not held."""
    from alexnet_deploy import api
    from alexnet_deploy.bench.config import BenchConfig, Matrix, MeasureRules
    from alexnet_deploy.bench.pipeline import fidelity_probe
    from alexnet_deploy.bench.run import FidelityProbe, run_matrix

    model = digits_model  # its variant registered: the torch backend rebuilds the network
    rules = MeasureRules(warmup_iterations=1, min_iterations=5, min_seconds=0.05, max_seconds=0.1)
    matrix = Matrix(backends=("openvino", "torch"), precisions=("fp32", "bf16"), batches=(1,))
    run = api.bench(model, BenchConfig(matrix, rules), data=str(digits["heldout_dir"]),
                    work_dir=tmp_path / "work", out=tmp_path / "report")  # fmt: skip
    bf16_rows = [r for r in run.rows if r.case.precision == "bf16"]
    assert {r.case.backend for r in bf16_rows} == {"openvino", "torch"}
    for row in bf16_rows:
        assert row.ok and row.fidelity.basis == "as-executed"
        assert row.fidelity.top1_agreement >= BUDGET
        assert row.fidelity.emulated_top1_agreement >= BUDGET
    probe = fidelity_probe(model, str(digits["heldout_dir"]), 0)
    assert probe.max_top1_drop == C.DEFAULT_MAX_TOP1_DROP  # trained, real images: enforced
    flipped = probe.reference.copy()
    flipped[0] = flipped[0][::-1]  # another top-1 for the first image
    strict = FidelityProbe(probe.images, flipped, probe.source, C.DEFAULT_MAX_TOP1_DROP)
    result = run_matrix(
        model, BenchConfig(Matrix(backends=("openvino",), precisions=("fp32", "bf16"),
                                  batches=(1,)), rules),
        tmp_path / "work", strict, None, direct=False,
    )  # fmt: skip
    by = {r.case.precision: r for r in result.rows}
    assert by["fp32"].ok  # fp32 is the reference: never held
    assert by["bf16"].status == "failed" and "over the budget of 1" in by["bf16"].reason
    assert f"of {len(probe.images)} images" in by["bf16"].reason


@pytest.mark.parametrize(("flags", "amx_rate"), [(SAPPHIRE_RAPIDS, True), (ZEN4, False)])
def test_the_ceiling_uses_the_amx_rate_only_where_amx_tiles_ran(
    flags, amx_rate, tmp_path, monkeypatch
):
    """On a CPU with AMX, an INT8 or BF16 row whose runtime reports AMX kernels (or says
    nothing) is held to the tiles' rate, one that reports none to the vector units'; elsewhere
    the read-back changes nothing. Simulated through cpuinfo (this machine has no AMX)."""
    from alexnet_deploy.bench.roofline import Ceilings, compute_peaks, roofline_of

    info = tmp_path / "cpuinfo"
    info.write_text(f"vendor_id\t: GenuineIntel\ncpu family\t: 6\nflags\t\t: {flags} avx512_bf16\n")
    monkeypatch.setattr(cpu_isa, "CPUINFO", info)
    monkeypatch.setattr(cpu_isa.platform, "machine", lambda: "x86_64")
    peaks = compute_peaks(1.0, 1.0, cpu_isa.Clock(3.0, "read from cpufreq", True))
    ceilings = Ceilings(**peaks, bandwidth_gbs=100.0, threads=1, fingerprint="simulated")
    fp32 = cpu_isa.this_cpu().peak_per_cycle()[0]

    def pct(precision, amx):
        roof = roofline_of(1000.0, 1000.0, 10**9, 10**6, 1, precision, ceilings, amx=amx)
        return roof.pct_compute_peak

    for precision, tiles, vector in (("int8", 2048, 256), ("bf16", 2048, 2 * fp32)):
        ratio = pct(precision, False) / pct(precision, True)
        assert ratio == pytest.approx(tiles / vector if amx_rate else 1.0), precision
        assert pct(precision, None) == pct(precision, True)  # unsaid: the AMX ceiling
    assert pct("fp32", False) == pct("fp32", True)  # AMX has no FP32 tiles
