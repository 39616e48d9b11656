"""The gate on real bench reports of the trained test network: verdicts, exit codes, outputs,
baselines, environments, bad input."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET

import numpy as np
import polars as pl
import pytest

from alexnet_deploy.bench.config import BenchConfig, Matrix, MeasureRules
from alexnet_deploy.bench.records import BenchRow, Fidelity
from alexnet_deploy.cases import Case
from alexnet_deploy.gate.compare import (
    IMPROVED,
    INCONCLUSIVE,
    REGRESSED,
    UNCHANGED,
    Thresholds,
    compare_reports,
    verdict_of,
)
from alexnet_deploy.gate.reports import LoadedReport, load_report
from alexnet_deploy.workflow import ModelRequest, bench_model

RULES = MeasureRules(
    warmup_iterations=2, warmup_seconds=0.05, min_iterations=30, min_seconds=0.2, max_seconds=0.5
)
# The two runs the gate compares: each in 3 rounds over the matrix, so a stall of a shared
# machine that hits one round widens the interval (hierarchical bootstrap over rounds) instead
# of reading as a change (seen in CI: one stalled run, mean latency 2x, p99 0.7 -> 5 ms).
ROUNDS = MeasureRules(
    warmup_iterations=2,
    warmup_seconds=0.05,
    min_iterations=30,
    min_seconds=0.15,
    max_seconds=0.3,
    repeat=3,
)


@pytest.fixture(scope="module")
def reports(digits, tmp_path_factory):
    """Two real bench runs (ort fp32 and int8, batch 4, plus ort-direct)."""
    from alexnet_deploy.models.variants import register_variant
    from tests.digits import DIGITS

    register_variant(DIGITS)
    root = tmp_path_factory.mktemp("gate")
    model = root / "digits-tiny.onnx"
    shutil.copy(digits["onnx"], model)
    config = BenchConfig(
        Matrix(backends=("ort", "ort-direct"), precisions=("fp32", "int8"), batches=(4,)), ROUNDS
    )
    request = ModelRequest(model=model, data=str(digits["heldout_dir"]))
    for name in ("a", "b"):
        bench_model(request, config, root / "work", root / name, roofline=False, argv=["bench"])
    return root


def _slow_down(src, dst, factor: float, top1: float | None = None):
    """A copy of a report whose samples are ``factor`` slower (and optionally less faithful)."""
    shutil.copytree(src, dst)
    frame = pl.read_parquet(dst / "bench-samples.parquet")
    frame.with_columns((pl.col("latency_ns") * factor).cast(pl.Int64)).write_parquet(
        dst / "bench-samples.parquet"
    )
    if top1 is not None:
        data = json.loads((dst / "bench-summary.json").read_text())
        for row in data["rows"]:
            row["top1_agreement"] = top1
        (dst / "bench-summary.json").write_text(json.dumps(data))
    return dst


def _one_round(src, dst):
    """A copy of a report whose rounds are pooled into one: the tests that check a known
    slowdown's outputs compare a report with a scaled copy of itself, so the only noise left
    is within the samples (a stall of this machine in one round cannot widen the interval)."""
    shutil.copytree(src, dst)
    pl.read_parquet(dst / "bench-samples.parquet").drop("repeat").write_parquet(
        dst / "bench-samples.parquet"
    )
    return dst


def _stall_first_round(src, dst, factor: float):
    """A copy of a report whose first measured round ran ``factor`` slower (a stalled machine)."""
    shutil.copytree(src, dst)
    frame = pl.read_parquet(dst / "bench-samples.parquet")
    first = frame["repeat"].min()
    frame.with_columns(
        pl.when(pl.col("repeat") == first)
        .then(pl.col("latency_ns") * factor)
        .otherwise(pl.col("latency_ns"))
        .cast(pl.Int64)
        .alias("latency_ns")
    ).write_parquet(dst / "bench-samples.parquet")
    return dst


def test_same_code_twice_passes(reports, cli):
    # plumbing, not noise (scripts/gate-evaluation measures noise): two separate sub-millisecond
    # runs of 0.5 s on a loaded 2-core test machine, whose p50s were seen 2x apart in CI when
    # one run stalled (the suite runs beside it), so thresholds past that
    result = cli("gate", reports / "a", reports / "b", "--threshold", "1.5", "--threshold", "p99=5")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "gate PASS" in result.stdout


def test_slowdown_fails_with_exit_1_and_outputs(reports, cli, tmp_path, monkeypatch):
    # the baseline is the run the slow copy was made from, its rounds pooled: a known 1.5x
    # slowdown, whatever this machine's noise between runs or rounds (the gate's noise is
    # measured by scripts/gate-evaluation, not here; CI once saw one stalled round hide it)
    base = _one_round(reports / "a", tmp_path / "base")
    slow = _slow_down(base, tmp_path / "slow", 1.5)
    summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = cli(
        "gate",
        base,
        slow,
        "--json",
        tmp_path / "g.json",
        "--md",
        tmp_path / "g.md",
        "--junit",
        tmp_path / "g.xml",
    )
    assert result.exit_code == 1 and "gate FAIL" in result.stdout
    data = json.loads((tmp_path / "g.json").read_text())
    assert data["passed"] is False and data["exit_code"] == 1
    regressed = {
        (v["config"], v["metric"]) for v in data["verdicts"] if v["verdict"] == "regressed"
    }
    assert ("ort fp32 b4 latency", "p50") in regressed and (
        "ort fp32 b4 latency",
        "throughput",
    ) in regressed
    assert (
        "❌ alexnet-deploy gate" in summary.read_text()
        and (tmp_path / "g.md").read_text() == summary.read_text()
    )
    suite = ET.parse(tmp_path / "g.xml").getroot()
    assert int(suite.get("failures")) == len(regressed)


def test_worse_but_too_noisy_is_inconclusive_not_unchanged(reports, cli, tmp_path):
    # one of three rounds stalled 3x: a 1.5x slowdown beyond the 10% threshold, but drawing
    # rounds again can make it vanish. Not a failure (no false alarm from a noisy machine),
    # not "unchanged" either: named, explained, and --strict fails on it.
    stalled = _stall_first_round(reports / "a", tmp_path / "stalled", 3.0)
    slow = _slow_down(stalled, tmp_path / "slow", 1.5)
    result = compare_reports(load_report(stalled), load_report(slow), Thresholds())
    throughput = next(
        v for v in result.verdicts if v.config == "ort fp32 b4 latency" and v.metric == "throughput"
    )
    assert throughput.verdict == INCONCLUSIVE and throughput.change > 0.1
    assert throughput.ci_low < 1 < throughput.ci_high and "vary too much" in throughput.note
    assert result.passed and throughput in result.unsettled
    plain = cli("gate", stalled, slow, "--junit", tmp_path / "g.xml")
    assert plain.exit_code == 0 and "inconclusive" in plain.stdout.split("gate PASS")[-1]
    assert "--strict fails on them" in plain.stderr
    skipped = ET.parse(tmp_path / "g.xml").getroot().get("skipped")
    assert int(skipped) >= len(result.inconclusive)
    strict = cli("gate", stalled, slow, "--strict")
    assert strict.exit_code == 2 and "gate FAIL (--strict)" in strict.stdout


@pytest.mark.parametrize(
    ("change", "worse_sure", "better_sure", "expected"),
    [
        (0.5, True, False, REGRESSED),
        (0.5, False, False, INCONCLUSIVE),
        (0.05, True, False, UNCHANGED),  # real, but within the threshold
        (-0.5, False, True, IMPROVED),
        (-0.5, False, False, UNCHANGED),
    ],
)
def test_one_rule_for_every_mode(change, worse_sure, better_sure, expected):
    assert verdict_of(change, 0.1, worse_sure, better_sure) == expected


def test_result_object_is_truthy_on_pass(reports, tmp_path):
    base = _one_round(reports / "a", tmp_path / "base")
    a = load_report(base)
    same = compare_reports(a, a, Thresholds())
    assert same and same.passed and same.exit_code == 0
    slower = compare_reports(a, load_report(_slow_down(base, tmp_path / "s", 1.5)), Thresholds())
    assert not slower and slower.exit_code == 1


def test_fidelity_regression_fails_whatever_the_speed(reports, tmp_path):
    base = _one_round(reports / "a", tmp_path / "base")
    faster_but_wrong = _slow_down(base, tmp_path / "wrong", 0.5, top1=0.5)
    result = compare_reports(load_report(base), load_report(faster_but_wrong), Thresholds())
    fidelity = [v for v in result.verdicts if v.metric == "fidelity"]
    assert fidelity and all(v.verdict == REGRESSED for v in fidelity)
    assert any(v.verdict == "improved" for v in result.verdicts if v.metric == "p50")
    assert not result and result.exit_code == 1


def test_directory_of_past_reports_is_pooled(reports, tmp_path):
    history = tmp_path / "history"
    history.mkdir()
    shutil.copytree(reports / "a", history / "run1")
    shutil.copytree(reports / "b", history / "run2")
    pooled = load_report(history)
    single = load_report(reports / "a")
    key = next(iter(single.samples))
    assert len(pooled.samples[key]) == len(single.samples[key]) + len(
        load_report(reports / "b").samples[key]
    )


def test_ratio_mode_catches_int8_no_faster_than_fp32(reports, cli, tmp_path):
    baseline = tmp_path / "ratio-baseline.json"
    assert cli("gate", baseline, reports / "a", "--ratios", "--update-baseline").exit_code == 0
    data = json.loads(baseline.read_text())
    assert data["schema"] == "alexnet-deploy/ratio-baseline/1"
    name = "int8_speedup ort int8 b4 latency"
    assert name in data["ratios"] and "vs_direct ort fp32 b4 latency" in data["ratios"]
    # a committed baseline that says INT8 is twice as fast as FP32 on this backend
    committed = {"schema": data["schema"], "ratios": {name: {"value": 2.0, "threshold": 0.3}}}
    baseline.write_text(json.dumps(committed))
    # a change that makes INT8 exactly as slow as FP32: its samples become the FP32 ones
    broken = tmp_path / "broken"
    shutil.copytree(reports / "b", broken)
    frame = pl.read_parquet(broken / "bench-samples.parquet")
    is_ort = pl.col("backend") == "ort"
    fp32 = frame.filter(is_ort & (pl.col("precision") == "fp32"))
    rest = frame.filter(~(is_ort & (pl.col("precision") == "int8")))
    pl.concat([rest, fp32.with_columns(pl.lit("int8").alias("precision"))]).write_parquet(
        broken / "bench-samples.parquet"
    )
    result = cli("gate", baseline, broken)
    assert result.exit_code == 1 and "regressed" in result.stdout
    # the same baseline with the value really measured here passes on the unbroken report
    committed["ratios"][name]["value"] = data["ratios"][name]["value"]
    baseline.write_text(json.dumps(committed))
    assert cli("gate", baseline, reports / "a").exit_code == 0


def test_update_baseline_replaces_atomically(reports, cli, tmp_path):
    baseline = tmp_path / "baseline"
    shutil.copytree(reports / "a", baseline)
    result = cli(
        "gate",
        baseline,
        reports / "b",
        "--threshold",
        "0.5",
        "--threshold",
        "p99=5",
        "--update-baseline",
    )
    assert result.exit_code == 0
    assert (baseline / "bench-samples.parquet").read_bytes() == (
        reports / "b" / "bench-samples.parquet"
    ).read_bytes()
    assert not list(tmp_path.glob(".baseline*"))


def test_mismatched_environments_are_refused_or_flagged(reports, cli, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(reports / "b", other)
    data = json.loads((other / "bench-summary.json").read_text())
    data["environment_key"] = "another-machine"
    (other / "bench-summary.json").write_text(json.dumps(data))
    result = cli("gate", reports / "a", other)
    assert (
        result.exit_code == 2
        and "different environments" in result.stderr
        and "--ratios" in result.stderr
    )
    result = cli("gate", reports / "a", other, "--allow-env-mismatch", "--threshold", "0.5")
    assert "ENVIRONMENTS DIFFER" in result.stdout + result.stderr


def test_no_overlapping_configurations(reports, cli, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(reports / "b", other)
    data = json.loads((other / "bench-summary.json").read_text())
    for row in data["rows"]:
        row["batch"] = 99
    (other / "bench-summary.json").write_text(json.dumps(data))
    result = cli("gate", reports / "a", other)
    assert result.exit_code == 2 and "NOTHING COMPARABLE" in result.stdout
    assert "missing in current" in result.stdout


def test_too_few_samples_is_said_and_not_a_silent_pass(reports, cli, tmp_path):
    few = tmp_path / "few"
    shutil.copytree(reports / "b", few)
    frame = pl.read_parquet(few / "bench-samples.parquet")
    frame.filter((pl.col("index") < 3) & (pl.col("repeat") == 0)).write_parquet(
        few / "bench-samples.parquet"
    )
    result = cli("gate", reports / "a", few)
    assert "too few samples for the test (current has 3; need 10)" in result.stdout
    assert result.exit_code == 0  # fidelity still compared...
    assert cli("gate", reports / "a", few, "--strict").exit_code == 2  # ...and --strict refuses


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is corrupt"),
        ('{"schema": "alexnet-deploy/bench/0", "rows": []}', "has schema 'alexnet-deploy/bench/0'"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_corrupt_or_old_baseline(reports, cli, tmp_path, content, message):
    bad = tmp_path / "bench-summary.json"
    bad.write_text(content)
    result = cli("gate", bad, reports / "b")
    assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_missing_baseline_and_bad_threshold(reports, cli, tmp_path):
    assert "not found" in cli("gate", tmp_path / "nope.json", reports / "b").stderr
    result = cli("gate", reports / "a", reports / "b", "--threshold", "p42=0.1")
    assert result.exit_code == 2 and "unknown metric 'p42'" in result.stderr
    assert cli("gate").exit_code == 2


def test_samples_are_real_measurements(reports):
    """Guard: the reports hold real timings, not constants."""
    samples = load_report(reports / "a").samples
    for rounds in samples.values():
        flat = np.concatenate(rounds)
        assert len(flat) >= 30 and np.ptp(flat) > 0


def test_run_benches_the_baselines_configurations_now(reports, cli, tmp_path):
    # the plumbing of --run: what it benches and that every check compares. Its speed verdict
    # is two runs minutes apart on a shared machine (CI saw 1.7x while other work ran): that
    # noise is scripts/gate-evaluation-unpaired's to measure, not a test's to assume away.
    result = cli("gate", reports / "a", "--run", "--work-dir", tmp_path / "w")
    assert result.exit_code in (0, 1), result.stdout + result.stderr
    # --run is CURRENT benched now, judged in history mode (the "rerun" mode is folded into it)
    assert "(history): " in result.stdout and " 0 not comparable" in result.stdout
    assert "benched now (--run)" in result.stderr
    rerun = json.loads((tmp_path / "w" / "reports" / "gate-run" / "bench-summary.json").read_text())
    base = json.loads((reports / "a" / "bench-summary.json").read_text())
    assert sorted((r["backend"], r["precision"]) for r in rerun["rows"]) == sorted(
        (r["backend"], r["precision"]) for r in base["rows"]
    )
    # the same fidelity images (not the default photos) and every key of the matrix
    assert rerun["fidelity_source"] == base["fidelity_source"]
    for key in ("threads", "streams", "batches", "modes"):
        assert rerun["config"]["matrix"][key] == base["config"]["matrix"][key]


def test_ratio_baseline_per_cpu_class(reports, cli, tmp_path):
    """The current report's CPU class picks its own ratios; a class without figures falls back
    to the top-level floor, and says so."""
    from alexnet_deploy.cpu_isa import ISA_CLASSES, this_cpu

    name = "int8_speedup ort int8 b4 latency"
    here = this_cpu().name
    other = next(c for c in ISA_CLASSES if c != here)

    def baseline(by_isa: dict) -> str:
        path = tmp_path / f"ratios-{len(by_isa)}-{next(iter(by_isa), 'none')}.json"
        path.write_text(
            json.dumps(
                {
                    "schema": "alexnet-deploy/ratio-baseline/1",
                    "ratios": {name: {"value": 0.01, "threshold": 0.5}},  # any INT8 path passes
                    "by_isa": {
                        isa: {"ratios": {name: {"value": 100.0, "threshold": 0.1}}}
                        for isa in by_isa
                    },
                }
            )
        )
        return path

    strict = cli("gate", baseline({here: 1}), reports / "a")
    assert strict.exit_code == 1, strict.stdout + strict.stderr
    assert f"ratio baseline for CPU class {here}" in strict.stderr
    fallback = cli("gate", baseline({other: 1}), reports / "a")
    assert fallback.exit_code == 0, fallback.stdout + fallback.stderr
    assert f"no figures for CPU class {here}" in fallback.stderr


def _synthetic(rows: int, seed: int, factor: float = 1.0, spread: float = 0.01) -> LoadedReport:
    key = Case("ort", "fp32", 1, "latency")
    rng = np.random.default_rng(seed)
    samples = (1e6 * factor * (1 + spread * rng.standard_normal(rows))).clip(1).astype(np.int64)
    return LoadedReport([], {"env"}, {key: BenchRow(key, fidelity=Fidelity(1.0))}, {key: [samples]})


@pytest.mark.parametrize(("rows", "judged"), [(700, False), (1000, True)])
def test_p99_is_judged_only_on_enough_samples(rows, judged):
    """A p99 of 700 samples rests on 7 values: one stall decides it (seen in CI). Reported, not
    judged, until 1000 samples a side; a 40% slower tail is then caught."""
    set_by_user = Thresholds.parse(["0.1", "p99=0.25"])
    result = compare_reports(_synthetic(rows, 1), _synthetic(rows, 2, 1.4), set_by_user)
    p99 = next(v for v in result.verdicts if v.metric == "p99")
    assert p99.verdict == (REGRESSED if judged else "not judged"), p99
    if not judged:
        assert "reported, not judged" in p99.note and p99.current > p99.baseline


def test_separate_runs_without_measured_noise_use_the_separate_runs_defaults():
    """The paired setting's 10% is not the default for two separate runs: unpaired (and rerun)
    use C.GATE_UNPAIRED_THRESHOLDS unless the user set a threshold or the noise was measured."""
    from alexnet_deploy import constants as C

    base, slower = _synthetic(1000, 1), _synthetic(1000, 2, 1.15)
    default = compare_reports(base, slower, Thresholds())
    p50 = next(v for v in default.verdicts if v.metric == "p50")
    assert p50.threshold == C.GATE_UNPAIRED_THRESHOLDS["p50"] and p50.verdict != REGRESSED
    assert any("thresholds not set with --threshold are those for separate runs" in n
               for n in default.notes)  # fmt: skip
    asked = compare_reports(base, slower, Thresholds.parse(["p50=0.1"]))
    by_metric = {v.metric: v for v in asked.verdicts}
    assert by_metric["p50"].threshold == 0.1 and by_metric["p50"].verdict == REGRESSED
    assert by_metric["throughput"].threshold == C.GATE_UNPAIRED_THRESHOLDS["throughput"]


def test_gate_run_rebenches_every_key_field_threads_included(digits, tmp_path, cli):
    """`gate --run` rebuilt the matrix from the first five key fields and dropped threads."""
    from alexnet_deploy.gate.baseline import rerun_plan
    from alexnet_deploy.models.variants import register_variant
    from alexnet_deploy.workflow import gate_makers
    from tests.digits import DIGITS

    register_variant(DIGITS)
    model = tmp_path / "digits-tiny.onnx"
    shutil.copy(digits["onnx"], model)
    config = BenchConfig(
        Matrix(backends=("ort",), precisions=("fp32",), batches=(2,), threads=(1,)), RULES
    )
    request = ModelRequest(model=model, data=str(digits["heldout_dir"]))
    bench_model(request, config, tmp_path / "w", tmp_path / "base", roofline=False, argv=["bench"])
    base = load_report(tmp_path / "base")
    now = load_report(gate_makers(tmp_path / "w").bench(rerun_plan(base), tmp_path / "now"))
    assert set(now.rows) == set(base.rows) == {Case("ort", "fp32", 2, "latency", threads=1)}
    assert next(iter(now.rows)).label == "ort fp32 b2 latency t1"


def test_the_smallest_detectable_change_is_said():
    """Two tight runs can see a 10% threshold; two noisy short ones cannot, and say so."""
    ten = Thresholds.parse(["0.1"])
    tight = compare_reports(_synthetic(1000, 1), _synthetic(1000, 2), ten)
    p50 = next(v for v in tight.verdicts if v.metric == "p50")
    assert p50.detectable == pytest.approx(0.10) and not any("cannot see" in n for n in tight.notes)
    noisy = compare_reports(_synthetic(12, 1, spread=0.6), _synthetic(12, 2, spread=0.6), ten)
    p50 = next(v for v in noisy.verdicts if v.metric == "p50")
    assert p50.detectable > 0.10 and p50.verdict != REGRESSED
    assert any("cannot see a change as small as their threshold" in n for n in noisy.notes)


def test_the_mode_is_named_in_every_output(reports, cli, tmp_path):
    # the mode's name is under test, not this machine's noise: every report is a scaled copy
    # of one run's pooled rounds (two separate runs were seen 2x apart in CI)
    one = _one_round(reports / "a", tmp_path / "one")
    history = tmp_path / "history"
    history.mkdir()
    shutil.copytree(one, history / "run-a")
    _slow_down(one, history / "run-b", 1.02)
    current = _slow_down(one, tmp_path / "current", 1.01)
    # two reports are a history of one past run: one mode, one code path (issue #24)
    mode = "history"
    for baseline, out in ((one, tmp_path / "out-one"), (history, tmp_path / "out-history")):
        result = cli(
            "gate", baseline, current, "--threshold", "0.5", "--json", out / "g.json",
            "--md", out / "g.md", "--junit", out / "g.xml",
        )  # fmt: skip
        assert f"gate PASS ({mode}):" in result.stdout, result.stdout + result.stderr
        assert json.loads((out / "g.json").read_text())["mode"] == mode
        assert f"mode: **{mode}**" in (out / "g.md").read_text()
        suite = ET.parse(out / "g.xml").getroot()
        assert suite.find("properties/property[@name='mode']").get("value") == mode


# --- run-to-run noise: measured, stored with the baseline, and used as the threshold ---


def test_spread_is_the_largest_change_between_two_runs_and_raises_thresholds():
    from alexnet_deploy.gate.spread import Spread, spread_of

    assert spread_of([1.0, 1.2, 1.1]) == pytest.approx(0.2)
    spread = Spread(3, "test", {"ort fp32 b1 latency": {"p50": 0.2, "throughput": 0.01}})
    assert spread.threshold("ort fp32 b1 latency", "p50", 0.1) == pytest.approx(0.4)
    assert spread.threshold("ort fp32 b1 latency", "throughput", 0.1) == 0.1  # never below
    assert spread.threshold("ort fp32 b1 latency", "p99", 0.25) is None
    assert spread.threshold("another", "p50", 0.1) is None


def test_measure_noise_stores_the_spread_and_unpaired_gates_use_it(reports, cli, tmp_path):
    base = tmp_path / "base"
    shutil.copytree(reports / "a", base)
    measured = cli("gate", base, "--measure-noise", "2", "--work-dir", tmp_path / "w")
    assert measured.exit_code == 0, measured.stderr
    record = json.loads((base / "gate-noise.json").read_text())
    assert record["schema"] == "alexnet-deploy/gate-noise/1" and record["runs"] == 3
    assert set(record["spread"]) == {r.label for r in load_report(base).rows}
    assert all(v["p50"] >= 0 for v in record["spread"].values())
    assert "run-to-run noise over 3 separate runs" in measured.stdout
    # every check of a later gate says which threshold it used: 2x the stored spread or more
    result = cli("gate", base, reports / "b", "--json", tmp_path / "g.json")
    assert result.exit_code in (0, 1)
    data = json.loads((tmp_path / "g.json").read_text())
    assert any("thresholds from measured run-to-run noise" in n for n in data["notes"])
    for v in data["verdicts"]:
        if v["metric"] in ("p50", "throughput"):
            spread = record["spread"][v["config"]][v["metric"]]
            assert v["threshold"] == pytest.approx(max(0.1, 2 * spread))
    assert (tmp_path / "w").is_dir() and not list((tmp_path / "w").glob("noise-runs-*"))


def test_unpaired_without_noise_says_so(reports, tmp_path):
    result = compare_reports(load_report(reports / "a"), load_report(reports / "b"), Thresholds())
    assert any("no measured run-to-run noise" in n for n in result.notes)


def test_a_corrupt_noise_record_is_a_usage_error(reports, cli, tmp_path):
    base = tmp_path / "base"
    shutil.copytree(reports / "a", base)
    (base / "gate-noise.json").write_text("{not json")
    result = cli("gate", base, reports / "b")
    assert result.exit_code == 2 and "gate-noise.json is corrupt" in result.stderr


def test_history_lists_what_it_used_and_skipped_and_shows_when_it_changed(reports, cli, tmp_path):
    # the history's runs are copies of one report's pooled rounds (5% apart), so this machine's
    # run-to-run noise cannot make another step larger than the 2x one (seen in CI: two real
    # runs of the test network 2x apart when a run stalled)
    history = tmp_path / "history"
    history.mkdir()
    one = _one_round(reports / "a", tmp_path / "one")
    shutil.copytree(one, history / "run1")
    _slow_down(one, history / "run2", 1.05)
    shutil.copytree(one, history / "other-machine")
    data = json.loads((history / "other-machine" / "bench-summary.json").read_text())
    data["environment_key"] = "another-cpu"
    (history / "other-machine" / "bench-summary.json").write_text(json.dumps(data))
    (history / "broken").mkdir()
    (history / "broken" / "bench-summary.json").write_text("{truncated")
    slow = _slow_down(one, tmp_path / "slow", 2.0)
    result = cli("gate", history, slow, "--md", tmp_path / "g.md", "--json", tmp_path / "g.json")
    assert result.exit_code == 1, result.stdout + result.stderr
    notes = json.loads((tmp_path / "g.json").read_text())["notes"]
    assert any("left out other-machine: another environment" in n for n in notes)
    assert any("left out broken" in n and "corrupt" in n for n in notes)
    assert any(n.startswith("history: 2 reports used (run1") for n in notes)
    assert any("the 2 reports of the history" in n for n in notes)
    text = (tmp_path / "g.md").read_text()
    assert "### History: p50 (ms) per run, oldest first" in text
    # the 2x slowdown is the largest step, at the current run
    current_row = next(  # the table is render.py's Markdown: cells padded to the column
        line for line in text.splitlines() if line.startswith("| current ")
    )
    assert current_row.count("◀ +") == len(load_report(slow).rows)


def test_history_of_unreadable_reports_only_is_a_usage_error(cli, tmp_path, reports):
    history = tmp_path / "history"
    for name in ("x", "y"):
        (history / name).mkdir(parents=True)
        (history / name / "bench-summary.json").write_text("[]")
    result = cli("gate", history, reports / "a")
    assert result.exit_code == 2 and "no usable report" in result.stderr
