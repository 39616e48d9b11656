"""tune on a small space of the trained test network: the search, the constraint, the saved
choice reused by build and bench."""

from __future__ import annotations

import json
import statistics

import pytest

from alexnet_deploy.bench.records import BenchRow, Fidelity
from alexnet_deploy.bench.stats import LatencyStats
from alexnet_deploy.bench.tune import Constraint, choose, load_tuned
from alexnet_deploy.cases import Case
from alexnet_deploy.errors import AlexnetDeployError, UsageError

FAST = ["--min-seconds", "0.1", "--max-seconds", "0.3"]


@pytest.fixture(scope="module")
def model(digits_model):
    return digits_model


@pytest.mark.nncf
def test_tune_searches_saves_and_is_reused(model, digits, cli, tmp_path):
    tuned = tmp_path / "tuned.json"
    result = cli(
        "tune",
        "--model",
        model,
        "--data",
        digits["heldout_dir"],
        "--backend",
        "ort",
        "--precision",
        "fp32",
        "--precision",
        "int8",
        "--batch",
        "1,4",
        "--streams",
        "1,2",
        "--quantizer",
        "qdq",
        "--quantizer",
        "nncf",
        "--no-direct",
        "--time-budget",
        "0",
        "--no-roofline",
        *FAST,
        "-o",
        tuned,
        "--work-dir",
        tmp_path / "work",
    )
    assert result.exit_code == 0, result.stderr
    assert "Pareto front" in result.stdout and "chosen for" in result.stdout
    record = load_tuned(tuned)
    report = json.loads((tmp_path / "work" / "reports" / "tune" / "bench-summary.json").read_text())
    rows = [r for r in report["rows"] if r["status"] == "ok"]
    # stage 1: fp32 x 2 batches x 2 stream counts, and int8 from both routes (the tool's Q/DQ,
    # NNCF's), each engine static; stage 2: the 3 fastest on the dynamic range (--streams given)
    assert len(rows) == 12 + 3 and sum(bool(r.get("static")) for r in rows) == 12
    assert sorted({(r["precision"], r["quantizer"]) for r in rows}) == [
        ("fp32", "qdq"),
        ("int8", "nncf"),
        ("int8", "qdq"),
    ]
    nncf_rows = [r for r in rows if r["quantizer"] == "nncf"]
    qdq_int8 = {r["artifact_sha256"] for r in rows if r["precision"] == "int8"} - {
        r["artifact_sha256"] for r in nncf_rows
    }
    assert len(qdq_int8) == 1 and len({r["artifact_sha256"] for r in nncf_rows}) == 1
    assert all(r["top1_agreement"] >= 0.95 for r in nncf_rows)
    # the choice: of the confirm stage's finalists (3 interleaved rounds each), the best median
    finalists = record["search"]["stages"]["confirm"]
    confirmed = [r for r in rows if Case.from_row(r).label in finalists]
    assert len(confirmed) == len(finalists) == 3 and all(r["rounds"] == 3 for r in confirmed)
    best = max(
        (r for r in confirmed if r["top1_agreement"] >= 0.99),
        key=lambda r: statistics.median(r["round_images_per_s"]),
    )
    assert (
        record["choice"]["batch"] == best["batch"]
        and record["choice"]["precision"] == best["precision"]
        and record["choice"]["quantizer"] == best["quantizer"]
    )
    assert record["measured"]["images_per_s"] == pytest.approx(best["images_per_s"])
    # build and bench reuse the choice
    built = cli("build", model, "--tuned", tuned, "--work-dir", tmp_path / "work")
    assert built.exit_code == 0, built.stderr
    assert f"ort {record['choice']['precision']} engine" in built.stdout
    benched = cli(
        "bench",
        "--model",
        model,
        "--data",
        digits["heldout_dir"],
        "--tuned",
        tuned,
        "--batch",
        "1,4",  # the peers (and the tuned engine) at other batch sizes too
        *FAST,
        "--work-dir",
        tmp_path / "work",
        "--out",
        tmp_path / "again",
        "--no-roofline",
    )
    assert benched.exit_code == 0, benched.stderr
    again = json.loads((tmp_path / "again" / "bench-summary.json").read_text())
    ours = [
        r
        for r in again["rows"]
        if r["backend"] == "ort"
        and r["quantizer"] == record["choice"]["quantizer"]
        and r["batch"] == record["choice"]["batch"]
    ]
    assert {r["batch"] for r in again["rows"]} == {1, 4}
    assert len(ours) == 1 and ours[0]["batch"] == record["choice"]["batch"]
    assert ours[0]["streams"] == record["choice"]["streams"] and ours[0]["mode"] == "throughput"
    assert {r["backend"] for r in again["rows"]} >= {"ort", "ort-direct"}
    # the tuned row against the best row of a runtime used directly, in the same run
    versus = again["comparisons"]["tuned_vs_best_peer"]
    peers = [r for r in again["rows"] if r["backend"].endswith("-direct") and r["status"] == "ok"]
    best_peer = max(r["images_per_s"] for r in peers)
    assert versus["ratio"] == pytest.approx(ours[0]["images_per_s"] / best_peer)
    assert versus["met"] == (versus["ratio"] >= 1.2)


def _row(
    backend="ort", batch=1, ips=100.0, p99=10.0, top1=1.0, status="ok", quantizer="qdq", rounds=None
):
    case = Case(backend, "int8", batch, "throughput", streams=1, quantizer=quantizer)
    p50 = p99 / 2
    latency = LatencyStats(100, p50, p50, 0.0, p99, {50.0: p50, 99.0: p99}, p50, p50)
    return BenchRow(
        case,
        status,
        latency=latency,
        images_per_s=ips,
        round_images_per_s=None if rounds is None else tuple(rounds),
        fidelity=Fidelity(top1),
    )


def test_constraint_handling():
    rows = [
        _row(batch=1, ips=100, p99=5),
        _row(batch=32, ips=500, p99=80),
        _row(batch=64, ips=520, p99=160),
        _row(batch=8, ips=900, p99=20, top1=0.9),
        _row(batch=16, status="failed"),
    ]
    unconstrained = choose(rows, Constraint())
    assert unconstrained.chosen.case.batch == 64
    assert "top-1 agreement 0.900 < 0.990" in unconstrained.rejected["ort int8 b8 throughput s1"]
    assert choose(rows, Constraint(max_p99_ms=100)).chosen.case.batch == 32
    result = choose(rows, Constraint(max_p99_ms=10))
    assert result.chosen.case.batch == 1
    assert "p99 20.0 ms > 10 ms" in result.rejected["ort int8 b8 throughput s1"]
    assert [r.case.batch for r in result.front] == [
        1,
        8,
    ]  # b8 dominates b32 and b64; failed rows are off it
    with pytest.raises(AlexnetDeployError, match="no configuration meets the constraint"):
        choose(rows, Constraint(max_p99_ms=1))
    with pytest.raises(UsageError, match="must be > 0"):
        Constraint(max_p99_ms=0)


def test_tuned_file_errors(tmp_path, cli, model):
    assert "not found" in cli("build", model, "--tuned", tmp_path / "missing.json").stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "something-else"}')
    result = cli("bench", "--tuned", bad, "--work-dir", tmp_path)
    assert result.exit_code == 1 and "is not a tuned configuration" in result.stderr


def test_tuned_against_the_best_peer_is_the_median_of_paired_rounds():
    from alexnet_deploy.bench.tune import tuned_comparison

    choice = Case("openvino", "int8", 32, "throughput", streams=1)
    rows = [
        _row("openvino", 32, 800.0, rounds=[700, 900, 800]),
        _row("openvino", 32, 760.0, quantizer="nncf", rounds=[1, 1, 1]),
        _row("openvino-direct", 32, 640.0, quantizer="nncf", rounds=[500, 800, 620]),
        _row("ort-direct", 32, 500.0, rounds=[500, 500, 500]),
        _row("openvino-direct", 32, 9999.0, status="failed"),
    ]
    found = tuned_comparison(choice, rows)["tuned_vs_best_peer"]
    # the best peer by pooled images/s; the ratio is the median of the per-round ratios
    assert found["peer"]["backend"] == "openvino-direct" and found["peer"]["quantizer"] == "nncf"
    assert found["per_round"] == pytest.approx([1.4, 1.125, 800 / 620])
    assert found["ratio"] == pytest.approx(800 / 620)
    assert found["pooled_ratio"] == pytest.approx(800 / 640)
    assert found["met"] is True and "median of 3 paired rounds" in found["text"]
    assert tuned_comparison(choice, rows[:2]) == {}  # no peer measured: nothing to claim
