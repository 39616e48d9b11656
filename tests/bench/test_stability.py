"""The stability verdict (bench/stats.py): synthetic sample arrays with a known answer, the
recorded main jobs of docs/benchmarks/ (no timing here), and one flagged row carried through the
real report path into every output: terminal table, CSV, JSON, Markdown, headline, gate."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from alexnet_deploy.bench.config import BenchConfig
from alexnet_deploy.bench.measure import Measurement
from alexnet_deploy.bench.pipeline import comparisons
from alexnet_deploy.bench.records import BenchRow, Fidelity, RoundSamples, recorded_stability
from alexnet_deploy.bench.report import publish_reports, terminal_frame
from alexnet_deploy.bench.run import CaseRun, _row
from alexnet_deploy.bench.stats import UNSTABLE_CAUSE, stability
from alexnet_deploy.cases import Case
from alexnet_deploy.gate.reports import load_report
from alexnet_deploy.render import TableFormat

RECORDED = Path(__file__).resolve().parents[2] / "docs" / "benchmarks"
MS = 1e6  # samples are nanoseconds


def _tight(median_ms: float, n: int, seed: int) -> np.ndarray:
    """A quiet machine's latencies: within about 2% of one value, plus two stalls."""
    rng = np.random.default_rng(seed)
    samples = rng.normal(median_ms * MS, 0.02 * median_ms * MS, n)
    samples[[n // 3, 2 * n // 3]] = 5 * median_ms * MS  # a stall is not instability
    return samples


def _issue_row(n: int = 25, seed: int = 1) -> np.ndarray:
    """Issue #24's torch fp32 b1 under other load: 97 ms, then 241 ms (one round)."""
    rng = np.random.default_rng(seed)
    first = rng.normal(97 * MS, 1 * MS, n // 2)
    return np.concatenate([first, rng.normal(241 * MS, 2 * MS, n - n // 2)])


def test_a_tight_unimodal_distribution_is_stable():
    for one_at_a_time in (True, False):
        verdict = stability([_tight(12, 300, 0)], [83.0], one_at_a_time=one_at_a_time)
        assert not verdict.unstable and verdict.text == ""
    rounds = [_tight(12, 300, seed) for seed in range(3)]
    assert not stability(rounds, [83.0, 84.5, 81.9]).unstable


def test_bimodal_halves_like_97_and_241_ms_are_unstable():
    verdict = stability([_issue_row()], [5.6])
    assert verdict.unstable
    assert re.search(r"halves disagree: p50 9[78][.\d]*, then 24\d ms", verdict.text)
    assert "not pinned down" in verdict.text and "two speeds" in verdict.text


def test_two_speeds_interleaved_are_unstable_one_request_at_a_time_only():
    """Calls alternating between two speeds (load that comes and goes faster than a half):
    the halves agree, the distribution does not. In throughput mode requests contend with each
    other by design, so a wide per-request spread there is no instability."""
    mixed = np.random.default_rng(2).permutation(_issue_row(200))
    latency = stability([mixed], [5.6])
    assert latency.unstable and "two speeds" in latency.text and "halves" not in latency.text
    assert not stability([mixed], [5.6], one_at_a_time=False).unstable
    minority = _tight(97, 400, 3)
    minority[::5] = 241 * MS  # one call in five at the slow speed: the median is untouched
    assert "two speeds: 20% of calls" in stability([minority]).text


def test_rounds_at_5_6_and_46_images_per_s_are_unstable():
    rounds = [_tight(178, 30, 4), _tight(21.7, 30, 5)]  # each round tight on its own
    verdict = stability(rounds, [5.6, 46.0])
    assert verdict.reasons == ("rounds disagree: 5.6 to 46 images/s (std dev 111% of mean)",)
    assert not stability(rounds[:1] * 2, [46.0, 47.5]).unstable


def test_few_wide_samples_are_not_pinned_down():
    few = np.array([10, 10.5, 14, 9.8, 13.5]) * MS
    assert "not pinned down" in stability([few]).text
    assert not stability([np.array([10, 10.1, 9.9, 10.05, 10]) * MS]).unstable


def _flagged(run: str) -> dict[str, str]:
    """The verdict on a committed report's own samples (computed now, not as recorded)."""
    report = load_report(RECORDED / run)
    found = {}
    for key, row in report.rows.items():
        computed = replace(row, stability=None)  # as if the report had recorded no verdict
        if why := recorded_stability(computed, report.samples[key]):
            found[key.label] = why
    return found


@pytest.mark.parametrize("run", ["main-amd-zen4", "tuned"])
def test_the_recorded_quiet_runs_flag_no_row(run):
    """constants.py cites these counts: the thresholds leave a quiet machine's rows alone."""
    assert _flagged(run) == {}


def test_the_recorded_noisy_run_flags_most_rows():
    flagged = _flagged("main")  # Ice Lake, p50s moving 1-43% between rounds
    assert len(flagged) >= 13, flagged  # 17 of 26 when written
    assert "rounds disagree" in flagged["torch fp32 b1 latency"]


def test_a_recorded_verdict_is_read_as_recorded():
    key = Case("torch", "fp32", 1, "latency").key()
    flagged = BenchRow.from_columns({**key, "unstable": True, "instability": "why"})
    assert recorded_stability(flagged, None) == "why"
    stable = BenchRow.from_columns({**key, "unstable": False, "instability": ""})
    assert recorded_stability(stable, [_issue_row()]) == ""
    assert recorded_stability(BenchRow.from_columns(key), [_issue_row()])  # computed: unstable


def _recorded_row(case: Case, model: Path, rounds: list[np.ndarray]) -> BenchRow:
    """A row as run_matrix makes it, from recorded rounds instead of timing now."""
    run = CaseRun(case, model, model.parent)
    run.measurements = [
        Measurement(r.astype(np.int64), float(r.sum()) / 1e9, len(r), case.batch, "time cap")
        for r in rounds
    ]
    run.fidelity = Fidelity(1.0, samples=16)
    return _row(case, run, BenchConfig(), None, 0)


def _real_report(cli, digits_model, digits, tmp_path) -> dict:
    """A real report of this machine (its environment, schema and files) to put recorded rows
    in: a short bench of the trained test network."""
    first = cli(
        "bench", "--model", digits_model, "--data", digits["heldout_dir"], "--backend", "ort",
        "--precision", "fp32", "--batch", "1", "--no-direct", "--no-roofline",
        "--min-seconds", "0.1", "--max-seconds", "0.3",
        "--work-dir", tmp_path / "w", "--out", tmp_path / "real",
    )  # fmt: skip
    assert first.exit_code == 0, first.stderr
    return json.loads((tmp_path / "real" / "bench-summary.json").read_text())


def test_an_unstable_row_is_flagged_in_every_output(digits_model, digits, cli, tmp_path, capsys):
    report = _real_report(cli, digits_model, digits, tmp_path)
    real = report["rows"][0]
    assert isinstance(real["unstable"], bool) and "instability" in real
    torch, int8 = Case("torch", "fp32", 1, "latency"), Case("ort", "int8", 1, "latency")
    rows = [
        _recorded_row(torch, digits_model, [_issue_row()]),
        _recorded_row(int8, digits_model, [_tight(2.5, 300, 6)]),
    ]
    assert [r.unstable for r in rows] == [True, False]
    why = rows[0].instability
    samples = [
        RoundSamples(torch, 0, _issue_row().astype(np.int64)),
        RoundSamples(int8, 0, _tight(2.5, 300, 6).astype(np.int64)),
    ]
    report["comparisons"] = comparisons(rows)
    paths = publish_reports(report, rows, samples, tmp_path / "flagged")

    headline = report["comparisons"]["best_int8_vs_torch_fp32"]
    assert headline["text"].endswith(f"(unstable: torch fp32 b1 latency: {why})")
    assert headline["unstable"] == ["torch fp32 b1 latency"]
    assert "(unstable" not in report["comparisons"]["best_int8"]["text"]  # a stable row: no note
    written = json.loads(paths["json"].read_text())
    assert [(r["unstable"], r["instability"]) for r in written["rows"]] == [
        (True, why),
        (False, ""),
    ]
    csv = pl.read_csv(paths["csv"])
    assert csv["unstable"].to_list() == [True, False] and csv["instability"][0] == why
    md = paths["md"].read_text()
    assert f"(unstable: torch fp32 b1 latency: {why})" in md  # the headline
    assert "| unstable |" in md and why in md and UNSTABLE_CAUSE in md
    assert paths["png"].stat().st_size > 0  # its label says "(unstable)"

    from alexnet_deploy.cli.console import print_frame

    for fmt in TableFormat:  # the terminal table, and --format md|csv|json on stdout
        capsys.readouterr()
        print_frame(terminal_frame(rows), fmt, "bench")
        shown = capsys.readouterr()
        text = shown.out + shown.err
        assert "unstable" in text, fmt
        if fmt is not TableFormat.table:  # every column: the reason too
            assert "two speeds" in text, fmt
    print_frame(terminal_frame(rows), TableFormat.table, "bench")  # back to the default

    # the gate: a verdict on an unstable row says so, on its line and in its JSON
    gate = cli(
        "gate", tmp_path / "flagged", tmp_path / "flagged", "--json", tmp_path / "gate.json",
        "--junit", tmp_path / "gate.xml",
    )  # fmt: skip
    assert "<system-out>unstable: baseline: " in (tmp_path / "gate.xml").read_text()
    verdict_line = gate.stdout.strip().splitlines()[-1]
    assert (
        verdict_line.startswith("gate PASS") and "(unstable: torch fp32 b1 latency" in verdict_line
    )
    assert UNSTABLE_CAUSE in gate.stderr
    verdicts = json.loads((tmp_path / "gate.json").read_text())
    assert list(verdicts["unstable"]) == ["torch fp32 b1 latency"]
    assert "(unstable: torch fp32 b1 latency" in verdicts["summary"]
    p50 = next(
        v
        for v in verdicts["verdicts"]
        if v["config"] == "torch fp32 b1 latency" and v["metric"] == "p50"
    )
    assert p50["unstable"] == f"baseline: {why}; current: {why}"


def test_a_ratio_resting_on_an_unstable_row_says_so(digits_model, digits, cli, tmp_path):
    """The in-run ratios gate (CI's second gate) names a ratio whose FP32 side was unstable."""
    report = _real_report(cli, digits_model, digits, tmp_path)
    fp32, int8 = Case("ort", "fp32", 1, "latency"), Case("ort", "int8", 1, "latency")
    unstable, steady = _issue_row(), _tight(2.5, 300, 6)
    rows = [
        _recorded_row(fp32, digits_model, [unstable]),
        _recorded_row(int8, digits_model, [steady]),
    ]
    samples = [
        RoundSamples(fp32, 0, unstable.astype(np.int64)),
        RoundSamples(int8, 0, steady.astype(np.int64)),
    ]
    report["comparisons"] = comparisons(rows)
    publish_reports(report, rows, samples, tmp_path / "flagged")
    gate = cli(
        "gate", tmp_path / "flagged", tmp_path / "flagged", "--ratios",
        "--json", tmp_path / "gate.json",
    )  # fmt: skip
    assert gate.exit_code == 0, gate.stderr
    assert "(unstable: int8_speedup ort int8 b1 latency" in gate.stdout.strip().splitlines()[-1]
    verdicts = json.loads((tmp_path / "gate.json").read_text())
    assert list(verdicts["unstable"]) == ["int8_speedup ort int8 b1 latency"]
    assert UNSTABLE_CAUSE in gate.stderr
