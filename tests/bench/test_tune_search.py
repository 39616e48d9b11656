"""tune's staged search on the trained test network: the time budget (what it admits, what it
skips and says so, a budget refused before any work), stage 2 refining stage 1's fastest, and the
saved choice (static batch, float parts) reproduced by build --tuned and bench --tuned, an old
tuned.json included. No timing is asserted: which configuration is faster is the machine's."""

from __future__ import annotations

import json
import re
import shutil
import statistics
from dataclasses import replace
from pathlib import Path

import pytest

from alexnet_deploy import constants as C
from alexnet_deploy import cpu_isa
from alexnet_deploy.bench.config import MeasureRules
from alexnet_deploy.bench.tune import (
    Constraint,
    choose,
    tuned_build_settings,
    tuned_choice,
    tuned_matrix_flags,
)
from alexnet_deploy.bench.tune_confirm import finalists, noise_gap
from alexnet_deploy.bench.tune_search import Budget, check_time_budget
from alexnet_deploy.cases import Case
from alexnet_deploy.errors import UsageError
from tests.test_faults import _snapshot, assert_clean_failure

FAST = ["--min-seconds", "0.05", "--max-seconds", "0.05"]
OLD_TUNED = Path(__file__).parents[2] / "docs" / "benchmarks" / "tuned" / "tuned.json"


@pytest.fixture(scope="module")
def setup(digits_artifacts, tmp_path_factory):
    """The trained network with its INT8 file (this tool's Q/DQ route), a work directory shared
    by this module's runs (engines reused) and the held-out images."""
    root = tmp_path_factory.mktemp("tune-search")
    model = root / "digits-tiny.onnx"
    for path in digits_artifacts["model"].parent.glob("digits-tiny*"):
        shutil.copy(path, root / path.name)
    return {"model": model, "work": root / "work", "data": digits_artifacts["heldout_dir"]}


def _tune(cli, setup, out: Path, *args: str):
    return cli(
        "tune", "--model", setup["model"], "--data", setup["data"], "--quantizer", "qdq",
        "--precision", "int8", *FAST, "--work-dir", setup["work"], "-o", out, *args,
    )  # fmt: skip


def _sidecar(stdout: str) -> dict:
    """The sidecar build printed (its path whole again where the console wrapped it)."""
    return json.loads(
        Path(re.search(r"sidecar\s*(\S+?engine\.json)", stdout.replace("\n", ""))[1]).read_text()
    )


def _report(setup) -> dict:
    return json.loads((setup["work"] / "reports" / "tune" / "bench-summary.json").read_text())


def test_the_budget_admits_a_candidate_while_the_time_left_covers_it():
    now = [0.0]
    rules = MeasureRules(warmup_seconds=0.5, min_seconds=0.5, max_seconds=1.0, repeat=2)
    budget = Budget(10, rules, clock=lambda: now[0])
    a, b, c, d = (Case("ort", "int8", n, "throughput") for n in (1, 2, 3, 4))
    budget.stage(0.5)  # stage 1: 5 s of the 10
    assert budget.estimate() == 1.5  # nothing ran yet: the rules' warm-up and time cap
    assert budget.admit(a) is None  # 2 rounds x 1.5 s = 3 s of 5 s left
    now[0] = 1.0  # a's first round took 1 s
    assert budget.admit(b) is None  # a's second round and b's two: 3 x 1 s = 3 s of 4 s left
    now[0] = 2.0
    why = budget.admit(c)  # a's and b's second rounds and c's two: 4 s, only 3 s left
    assert why and "time budget (10 s)" in why and "3.0 s left" in why and "4.0 s needed" in why
    assert budget.skipped == [c]
    assert budget.summary() == f"skipped 1 candidate (time budget 10 s): {c.label}"
    budget.stage(1.0)  # stage 2: the rest; a and b ran both rounds, in 6 s
    now[0] = 6.0
    assert budget.estimate() == 1.5 and budget.admit(d) is None  # 3 s of 4 s left
    assert Budget(0, rules).admit(c) is None  # 0: no limit


def test_a_budget_below_one_candidate_is_refused_before_any_work(cli, setup, tmp_path):
    before = _snapshot(setup["model"].parent)
    result = _tune(cli, setup, tmp_path / "t.json", "--backend", "ort", "--time-budget", "0.5")
    assert_clean_failure(
        result, 2, "--time-budget 0.5 cannot cover one candidate", before, [setup["model"].parent]
    )
    # one candidate: warm-up 0.5 s and --max-seconds 0.05, within the first stage's share
    assert f"raise --time-budget to {0.55 / C.TUNE_STAGE1_SHARE:.3g} s or more" in result.stderr
    assert not (tmp_path / "t.json").exists()


def test_a_small_budget_skips_candidates_and_says_so(cli, setup, tmp_path):
    out = tmp_path / "tuned.json"
    result = _tune(cli, setup, out, "--backend", "ort", "--batch", "1,2,3,4", "--time-budget",
                   "1.2", "--no-roofline")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    search = json.loads(out.read_text())["search"]
    # 12 stage-1 candidates (4 engines, 8 ONNX Runtime rows used directly) of at least 0.55 s
    # each (warm-up and time cap) cannot all fit in the first stage's 0.72 s
    assert len(search["stages"]["stage 1"]) == 12 and search["skipped"]
    line = next(x for x in result.stdout.splitlines() if x.startswith("skipped "))
    assert line == search["skipped_text"]
    assert line.startswith(f"skipped {len(search['skipped'])} candidate")
    assert "(time budget 1.2 s): " + ", ".join(search["skipped"]) in line
    report = _report(setup)
    measured = {Case.from_row(r).label for r in report["rows"]}
    assert search["stages"]["stage 1"][0] in measured  # the first always fits
    left_out = {n["what"]: n["reason"] for n in report["not_measured"]}
    for label in search["skipped"]:  # listed in the report with why, never measured
        assert "time budget (1.2 s)" in left_out[label] and label not in measured


def test_stage_two_refines_the_fastest_of_stage_one(cli, setup, tmp_path):
    out = tmp_path / "tuned.json"
    result = _tune(cli, setup, out, "--backend", "ort", "--batch", "1,2,3,4", "--no-direct",
                   "--time-budget", "0", "--no-roofline")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    saved = json.loads(out.read_text())
    rows = {Case.from_row(r): r for r in _report(setup)["rows"]}
    assert all(r["status"] == "ok" for r in rows.values())
    first = [c for c in rows if c.label in saved["search"]["stages"]["stage 1"]]
    # stage 1: each engine compiled for its own batch, at the default two requests
    assert {(c.batch, c.static, c.streams) for c in first} == {(b, True, 2) for b in (1, 2, 3, 4)}
    earlier = saved["search"]["earlier_images_per_s"]  # a finalist's row is the confirm stage's
    fastest = sorted(
        first, key=lambda c: earlier.get(c.label, rows[c]["images_per_s"]), reverse=True
    )
    expected = [
        variant.label
        for c in fastest[:3]
        for variant in (c.but(static=False), c.but(streams=1), c.but(streams=4))
    ]
    assert saved["search"]["stages"]["stage 2"] == expected  # the slowest is not refined
    assert len(rows) == 4 + 9 and saved["search"]["skipped"] == []
    assert "every candidate ran (no time budget)" in result.stdout
    # the confirm stage: 3 finalists (no runtime used directly), their rows its 3 rounds
    finalists = [c for c in rows if c.label in saved["search"]["stages"]["confirm"]]
    assert len(finalists) == 3 and saved["search"]["confirm_rounds"] == 3
    before = sorted(rows, key=lambda c: earlier.get(c.label, rows[c]["images_per_s"]))
    assert set(finalists) == set(before[-3:])  # the fastest of stages 1 and 2
    assert all(len(rows[c]["round_images_per_s"]) == rows[c]["rounds"] == 3 for c in finalists)
    assert all(rows[c]["rounds"] == 1 for c in rows if c not in finalists)
    best = max(finalists, key=lambda c: statistics.median(rows[c]["round_images_per_s"]))
    assert tuned_choice(out) == best  # the best median (all meet the constraint)


@pytest.mark.openvino
def test_the_saved_choice_is_reproduced_by_build_and_bench(cli, setup, tmp_path):
    out = tmp_path / "tuned.json"
    result = _tune(cli, setup, out, "--backend", "openvino", "--batch", "2", "--streams", "2",
                   "--no-direct", "--time-budget", "0", "--no-roofline")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    record = json.loads(out.read_text())
    assert {"static", "float_precision"} <= set(record["choice"])  # every field of the case
    floats = "bf16" if cpu_isa.this_cpu().bf16_native else None
    static = replace(tuned_choice(out), static=True, float_precision=floats)
    for choice in (tuned_choice(out), static):
        path = tmp_path / f"{choice.static}-{choice.float_precision}.json"
        path.write_text(json.dumps({**record, "choice": choice.columns()}))
        built = cli("build", setup["model"], "--tuned", path, "--work-dir", setup["work"])
        assert built.exit_code == 0, built.stderr
        sidecar = _sidecar(built.stdout)
        options = sidecar["options"]
        assert options["static_batch"] == (choice.batch if choice.static else None)
        assert options["float_precision"] == choice.float_precision
        assert sidecar["input_shape"][0] == (choice.batch if choice.static else None)
    benched = cli(
        "bench", "--model", setup["model"], "--data", setup["data"], "--tuned", path, *FAST,
        "--no-roofline", "--work-dir", setup["work"], "--out", tmp_path / "again",
    )  # fmt: skip
    assert benched.exit_code == 0, benched.stderr
    again = json.loads((tmp_path / "again" / "bench-summary.json").read_text())
    ours = [Case.from_row(r) for r in again["rows"] if r["backend"] == "openvino"]
    assert static in ours and all(c.static and c.float_precision == floats for c in ours)
    # beside it, the runtimes used directly with their documented throughput settings, as tune
    # measures them: OpenVINO's async queue of its optimal requests on a static batch, ONNX
    # Runtime's default session from one thread and from two
    from alexnet_deploy.bench.direct import openvino_optimal_requests

    peers = {Case.from_row(r) for r in again["rows"] if r["backend"].endswith("-direct")}
    qdq = {c.but(quantizer="qdq") for c in peers} & peers
    requests = openvino_optimal_requests(setup["model"].parent / "digits-tiny.int8-cpu.onnx", 2)
    assert qdq == {
        Case("openvino-direct", "int8", 2, "throughput", streams=requests, static=True),
        *(Case("ort-direct", "int8", 2, "throughput", streams=n) for n in (1, 2)),
    }
    headline = again["comparisons"]["tuned_vs_best_peer"]["text"]
    assert "with its documented throughput settings (" in headline
    with pytest.raises(UsageError, match="--tuned decides --static, --float-precision"):
        tuned_matrix_flags(static, {"statics": (True,), "float_precisions": ("bf16",)})


@pytest.mark.openvino
def test_an_old_tuned_json_still_loads_and_builds(cli, setup):
    old = json.loads(OLD_TUNED.read_text())
    assert "static" not in old["choice"] and isinstance(old["model"], str)  # before issue #28
    choice = tuned_choice(OLD_TUNED)
    assert (choice.static, choice.float_precision) == (False, None)
    assert tuned_build_settings(choice, 32)["static_batch"] is None
    flags = tuned_matrix_flags(choice, {})
    assert flags["statics"] == (False,) and flags["float_precisions"] == (None,)
    built = cli("build", setup["model"], "--tuned", OLD_TUNED, "--work-dir", setup["work"])
    assert built.exit_code == 0, built.stderr
    sidecar = _sidecar(built.stdout)
    assert sidecar["options"]["static_batch"] is None and sidecar["options"]["max_batch"] == 64


def test_the_confirm_stage_decides_the_choice_and_the_ratio_from_its_rounds(cli, setup, tmp_path):
    """The finalists of stages 1-2 and the fastest row of ONNX Runtime used directly, measured
    again in the same 3 rounds: the choice is the best median of those rounds, the ratio the
    median of the per-round ratios, and what is within noise of the choice is said."""
    out = tmp_path / "tuned.json"
    result = _tune(cli, setup, out, "--backend", "ort", "--batch", "1,2", "--time-budget", "0",
                   "--no-roofline")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    saved = json.loads(out.read_text())
    rows = {Case.from_row(r): r for r in _report(setup)["rows"]}
    finalists = [c for c in rows if c.label in saved["search"]["stages"]["confirm"]]
    engines = [c for c in finalists if c.backend == "ort"]
    assert len(engines) == 3 and [c.backend for c in finalists].count("ort-direct") == 1
    assert all(rows[c]["rounds"] == len(rows[c]["round_images_per_s"]) == 3 for c in finalists)
    rounds = {c: rows[c]["round_images_per_s"] for c in finalists}
    best = max(engines, key=lambda c: statistics.median(rounds[c]))
    assert tuned_choice(out) == best
    assert saved["measured"]["round_images_per_s"] == rounds[best]
    # ONNX Runtime used directly: its confirmed row, the per-round ratios of the same rounds
    peer = next(c for c in finalists if c.backend == "ort-direct")
    versus = saved["direct"]["runtimes"]["ort-direct"]
    assert Case.from_row(versus["case"]) == peer
    per_round = [m / p for m, p in zip(rounds[best], rounds[peer], strict=True)]
    assert versus["per_round"] == pytest.approx(per_round)
    assert versus["ratio"] == pytest.approx(statistics.median(per_round))
    assert "median of 3 paired rounds" in versus["text"] and versus["text"] in result.stdout
    # within noise: the other finalists whose median is within the rounds' noise of the choice
    close = {}
    for c in engines:
        gap, noise = noise_gap(rounds[best], rounds[c])
        if c != best and gap < noise:
            close[c.label] = (gap, noise)
    noted = {e["label"]: (e["gap"], e["noise"]) for e in saved["within_noise_of"]}
    assert noted.keys() == close.keys()
    for label, figures in close.items():
        assert noted[label] == pytest.approx(figures)
    assert ("within noise of each other" in result.stdout) == bool(close)
    # the terminal: bench's headers, the engine's real range, the runtime's threads
    stdout = result.stdout.replace("\n", " ")
    for header in ("img/s", "p50 ms", "p99 ms", "top-1 agree", "requests", "shape"):
        assert header in stdout
    assert "images_per_s" not in stdout and "threads None" not in stdout
    sidecar = json.loads((Path(rows[best]["engine"]).parent / "engine.json").read_text())
    shape = "static" if best.static else f"dynamic 1..{sidecar['options']['max_batch']}"
    chosen = next(line for line in result.stdout.splitlines() if line.startswith("chosen for"))
    requests = f"{best.streams} request" + ("s" if best.streams != 1 else "")
    assert f"batch {best.batch} {shape}, {requests}, the runtime's threads" in chosen


def test_the_choice_is_the_best_median_and_close_ones_are_within_noise():
    """The confirm stage's decision on given rounds (no timing): the best median, not the best
    pooled figure nor a row measured once; the others within the noise of it, each judged by
    the 2% floor or by the spread of its rounds, whichever is larger; the ratio to a runtime
    used directly from its confirmed row."""
    from alexnet_deploy.bench.direct_tput import versus_direct
    from alexnet_deploy.bench.tune_report import tuned_record
    from tests.bench.test_tune import _row

    wide = _row("ort", 1, 110.0, rounds=[100, 100, 130])  # best pooled, median 100, spread 30%
    best = _row("ort", 2, 105.0, rounds=[105, 104, 106])
    near = _row("ort", 4, 104.0, rounds=[104, 103.5, 104.5])  # 1% below: within the floor
    slow = _row("ort", 8, 80.0, rounds=[80, 80, 80])
    once = _row("ort", 16, 200.0)  # measured in stage 1 only
    peer = _row("ort-direct", 2, 100.0, rounds=[100, 100, 100])
    faster_peer = _row("ort-direct", 1, 150.0)  # not confirmed
    rows = [wide, best, near, slow, once, peer, faster_peer]
    assert finalists(rows, lambda r: True) == [once.case, faster_peer.case, wide.case, best.case]
    confirmed = [r.case for r in (wide, best, near, slow, peer)]
    result = choose(rows, Constraint(), confirmed=confirmed)
    assert result.chosen is best and choose(rows, Constraint()).chosen is once
    close = result.confirmation.within_noise_of()
    assert [c["label"] for c in close] == [near.label, wide.label]  # not slow: 24% below
    assert (close[0]["gap"], close[0]["noise"]) == pytest.approx((1 / 105, 0.02))
    assert (close[1]["gap"], close[1]["noise"]) == pytest.approx((5 / 105, 0.3))
    assert result.confirmation.noise_text() == (
        f"{best.label} and {near.label} (1.0% apart; noise 2.0%); {wide.label} (4.8% apart; "
        "noise 30.0%) are within noise of each other"
    )
    assert noise_gap([100, 100], [97, 97]) == pytest.approx((0.03, 0.02))  # beyond the floor
    record = tuned_record(result, Constraint(), {"name": "m", "path": "m.onnx"}, None, {})
    assert [c["label"] for c in record["within_noise_of"]] == [near.label, wide.label]
    assert record["measured"]["median_images_per_s"] == 105
    assert [f["label"] for f in record["search"]["confirm"]["finalists"]] == [
        best.label, near.label, wide.label, slow.label, peer.label,
    ]  # fmt: skip
    found = versus_direct(best, rows, None, result.confirmation.peers)["runtimes"]["ort-direct"]
    assert found["images_per_s"] == 100.0 and found["ratio"] == pytest.approx(1.05)
    assert "median of 3 paired rounds" in found["text"]
    assert choose(rows, Constraint(), confirmed=[peer.case]).confirmation is None  # no candidate


def test_the_budget_counts_every_round_of_a_candidate():
    """--repeat: a candidate is that many rounds, each a warm-up and the time cap, before any
    has run; the confirm stage's finalists run its own rounds, their skips listed apart."""
    rules = MeasureRules(warmup_seconds=0.5, min_seconds=0.05, max_seconds=0.05, repeat=3)
    one = 3 * 0.55 / C.TUNE_STAGE1_SHARE  # the budget whose first stage covers one candidate
    with pytest.raises(UsageError, match=r"about 1\.65 s \(3 rounds \(--repeat\) of warm-up"):
        check_time_budget(one - 0.1, rules)
    check_time_budget(one + 0.01, rules)
    check_time_budget(0, rules)  # no limit
    now = [0.0]
    budget = Budget(10, replace(rules, repeat=1), clock=lambda: now[0])
    a, b = Case("ort", "int8", 1, "throughput"), Case("ort", "int8", 2, "throughput")
    budget.stage(C.TUNE_STAGE1_SHARE)
    assert budget.admit(a) is None
    now[0] = 2.0  # a's one round took 2 s
    unconfirmed: list[Case] = []
    budget.stage(1.0, rounds=3, skipped=unconfirmed)
    assert budget.admit(a) is None  # 3 rounds x 2 s = 6 s of 8 s left
    now[0] = 4.0
    why = budget.admit(b)  # a's 2 later rounds and b's 3: 10 s, 6 s left
    assert why and "6.0 s left" in why and "10.0 s needed" in why
    assert unconfirmed == [b] and budget.skipped == []
    said = budget.summary(unconfirmed, "finalist")
    assert said == f"skipped 1 finalist (time budget 10 s): {b.label}"


def test_a_headline_comparison_names_both_setups_and_what_differs():
    """bench's headline set the best INT8 row against a runtime used directly at the same batch
    and mode: it names both setups (route, batch, static or dynamic, requests), says what
    differs, and takes the peer set up most alike."""
    from alexnet_deploy.bench.pipeline import comparisons
    from tests.bench.test_tune import _row

    mine = Case("openvino", "int8", 32, "throughput", streams=2, quantizer="nncf")
    qdq = Case("openvino-direct", "int8", 32, "throughput", streams=2, static=True)
    rows = [replace(_row(ips=1370.0), case=mine), replace(_row(ips=1000.0), case=qdq)]
    text = comparisons(rows)["best_int8_vs_openvino_direct_int8"]["text"]
    assert text == (
        "1.37x openvino-direct int8 (1000.0 images/s): openvino int8 (nncf) b32 dynamic, "
        "2 requests against openvino-direct int8 (qdq) b32 static, 2 requests, throughput; "
        "differs in route nncf vs qdq, shape dynamic vs static"
    )
    alike = replace(_row(ips=1100.0), case=qdq.but(quantizer="nncf", static=False))
    found = comparisons([*rows, alike])["best_int8_vs_openvino_direct_int8"]
    assert found["ratio"] == pytest.approx(1370 / 1100) and found["text"].endswith("set up alike")
    assert not any("same batch and mode" in c["text"] for c in comparisons(rows).values())
