"""The gate's modes (issue #24, part 2): which mode a request runs, decided by the gate library
(gate/modes.py) from a typed GateRequest; the combinations it refuses before any work; two
reports judged as a history of one past run; and the removed options, each refused through the
real CLI with one line naming what replaces it."""

from __future__ import annotations

import json
import shutil

import pytest

from alexnet_deploy import constants as C
from alexnet_deploy.errors import UsageError
from alexnet_deploy.gate.modes import GateRequest, Mode, check_request, decide_mode, run_gate
from alexnet_deploy.gate.reports import RATIO_SCHEMA
from tests.test_faults import _snapshot, assert_clean_failure


@pytest.fixture
def paths(tmp_path):
    """A bench report's path (never read to decide a mode), a ratio baseline file, a model."""
    ratio = tmp_path / "ratio-baseline.json"
    ratio.write_text(json.dumps({"schema": RATIO_SCHEMA, "ratios": {}}))
    return {"report": tmp_path / "base", "ratio": ratio, "cur": tmp_path / "cur",
            "model": tmp_path / "m.onnx"}  # fmt: skip


# (baseline, request fields) -> the mode: every way a mode is reached
MODE_CASES = [
    ("report", {"current": "cur"}, Mode.HISTORY),  # two reports: a history of one past run
    ("report", {"run": True}, Mode.HISTORY),  # --run: CURRENT benched now, an input
    ("report", {"current": "cur", "measure_noise": 3}, Mode.HISTORY),
    ("report", {"run": True, "measure_noise": 3}, Mode.HISTORY),
    ("report", {"current": "cur", "model": "model"}, Mode.HISTORY),  # a CURRENT report wins
    ("report", {"run": True, "model": "model"}, Mode.HISTORY),
    ("report", {"current": "cur", "ratios": True}, Mode.RATIOS),
    ("ratio", {"current": "cur"}, Mode.RATIOS),  # a ratio baseline, told by its schema
    ("report", {"model": "model"}, Mode.PAIRED),  # a current model and no report: paired
    ("report", {"paired": True}, Mode.PAIRED),  # the main job's export as current
    ("report", {"paired": True, "current": "cur"}, Mode.PAIRED),  # falls back to the reports
    ("report", {"paired": True, "run": True}, Mode.PAIRED),
]


def _request(paths, baseline: str, fields: dict) -> GateRequest:
    named = {k: paths[v] if k in ("current", "model") else v for k, v in fields.items()}
    return GateRequest(paths[baseline], **named)


@pytest.mark.parametrize(("baseline", "fields", "mode"), MODE_CASES)
def test_each_input_combination_runs_its_mode(paths, baseline, fields, mode):
    request = _request(paths, baseline, fields)
    assert decide_mode(request) is mode
    assert check_request(request) is mode  # a combination that runs: not refused


def test_only_the_modes_that_earn_their_place_remain():
    from alexnet_deploy.gate.compare import MODES

    assert set(MODES) == {m.value for m in Mode} == {"history", "ratios", "paired"}


REFUSED = [
    ("report", {"paired": True, "update_baseline": True}, "--update-baseline takes a CURRENT"),
    ("report", {"model": "model", "measure_noise": 2}, "a paired gate measures its own"),
    ("report", {"paired": True, "ratios": True}, "a paired gate measures the baseline report's"),
    ("ratio", {"model": "model"}, "a paired gate measures the baseline report's engines"),
    ("report", {"current": "cur", "run": True}, "pass a CURRENT report or --run, not both"),
    ("ratio", {"current": "cur", "measure_noise": 3}, "ratios are measured within one run"),
    ("report", {"current": "cur", "measure_noise": 1}, "needs at least 2 runs, got 1"),
    ("report", {}, "gate needs a CURRENT report"),
    ("report", {"ratios": True}, "gate needs a CURRENT report"),
    ("ratio", {"run": True}, "is a ratio baseline, which holds none"),
]


@pytest.mark.parametrize(("baseline", "fields", "message"), REFUSED)
def test_a_combination_that_cannot_be_honoured_is_refused_before_any_work(
    paths, baseline, fields, message
):
    request = _request(paths, baseline, fields)
    with pytest.raises(UsageError, match=message):
        check_request(request)
    with pytest.raises(UsageError, match=message):
        run_gate(request)  # the library refuses it too, before reading a report


def test_measure_noise_alone_only_measures(paths):
    assert _request(paths, "report", {"measure_noise": 3}).measure_only
    assert not _request(paths, "report", {"measure_noise": 3, "current": "cur"}).measure_only
    assert not _request(paths, "report", {"measure_noise": 3, "run": True}).measure_only
    with pytest.raises(UsageError, match="no report to judge"):
        run_gate(_request(paths, "report", {"measure_noise": 3}))


# --- two reports and a history: one code path, thresholds from the runs' spread ---


def _copy(report, tmp_path, name: str, *, created: str | None = None):
    out = shutil.copytree(report / "report", tmp_path / name)
    if created:  # a history orders its reports by when they were made
        summary = out / "bench-summary.json"
        data = json.loads(summary.read_text())
        data["created"] = created
        summary.write_text(json.dumps(data))
    return out


def _p50_thresholds(result) -> set[float]:
    return {v.threshold for v in result.verdicts if v.metric == "p50"}


def test_two_reports_are_a_history_of_one_run_with_the_separate_runs_defaults(report, tmp_path):
    base = _copy(report, tmp_path, "base")
    result = run_gate(GateRequest(base, report / "report"))  # no makers: nothing is made
    assert result.mode == "history" and result.passed
    assert any(n.startswith("history: 1 report used (base") for n in result.notes)
    assert any("one past run, with no measured run-to-run noise" in n for n in result.notes)
    assert _p50_thresholds(result) == {C.GATE_UNPAIRED_THRESHOLDS["p50"]}


def test_a_history_of_two_runs_takes_its_thresholds_from_their_spread(report, tmp_path):
    history = tmp_path / "history"
    _copy(report, history, "run1", created="2026-01-01T00:00:00")
    _copy(report, history, "run2", created="2026-01-02T00:00:00")
    result = run_gate(GateRequest(history, report / "report"))
    assert result.mode == "history"
    assert any(n.startswith("history: 2 reports used (run1") for n in result.notes)
    assert any("the 2 reports of the history" in n for n in result.notes)
    # identical runs: no spread, so the threshold asked (the default), not the separate-runs one
    assert _p50_thresholds(result) == {C.GATE_THRESHOLDS["p50"]}


def test_a_baselines_measured_noise_is_its_history(report, tmp_path):
    """One report with the spread --measure-noise stored beside it: the same rule as a history
    directory (2x the spread, never below the threshold asked)."""
    from alexnet_deploy.gate.reports import load_report
    from alexnet_deploy.gate.spread import spread_of_runs, write_noise_record

    base = _copy(report, tmp_path, "base")
    run = load_report(base).runs[0]
    label = next(iter(run)).label
    spread = spread_of_runs([run, {k: [s * 1.3 for s in v] for k, v in run.items()}], "test")
    write_noise_record(base, spread, "this machine")
    result = run_gate(GateRequest(base, report / "report"))
    assert result.mode == "history"
    assert any("thresholds from measured run-to-run noise" in n for n in result.notes)
    [used] = _p50_thresholds(result)
    assert used == pytest.approx(2 * spread.by_config[label]["p50"]) and used > 0.5


def test_paired_without_the_baselines_model_falls_back_to_the_reports(report, tmp_path):
    from alexnet_deploy.workflow import gate_makers

    moved = _copy(report, tmp_path, "moved")
    summary = moved / "bench-summary.json"
    data = json.loads(summary.read_text())
    data["model"]["path"] = str(tmp_path / "gone.onnx")
    summary.write_text(json.dumps(data))
    request = GateRequest(moved, report / "report", paired=True, work_dir=tmp_path / "w")
    result = run_gate(request, gate_makers(tmp_path / "w"))
    assert result.mode == "history"
    assert "comparing the reports unpaired instead" in result.notes[0]
    with pytest.raises(UsageError, match="paired mode needs the baseline's model"):
        run_gate(GateRequest(moved, paired=True, work_dir=tmp_path / "w"), gate_makers(tmp_path))


# --- the removed options: one line naming the replacement, exit 2, nothing touched ---


REMOVED = [
    (("--aa",), "gate --aa was removed"),
    (("--aa", "--model", "{model}", "--trials", "20"), "gate --aa was removed"),
    (("--trials", "20"), "gate --trials was an option of the removed --aa"),
    (("--backend", "ort"), "gate --backend was an option of the removed --aa"),
    (("--precision", "int8"), "gate --precision was an option of the removed --aa"),
    (("--batch", "4"), "gate --batch was an option of the removed --aa"),
]


@pytest.mark.parametrize(("args", "message"), REMOVED, ids=[" ".join(a) for a, _ in REMOVED])
def test_a_removed_option_names_its_replacement(cli, report, tmp_path, args, message):
    before = _snapshot(report / "report")
    argv = [a.format(model=report / "m.onnx") for a in args]
    result = cli("gate", report / "report", report / "report", *argv, "--work-dir", tmp_path)
    assert_clean_failure(result, 2, message, before, [report / "report"])
    assert "scripts/gate-evaluation" in result.stderr and "gate " not in result.stdout
    assert list(tmp_path.iterdir()) == []  # refused at parse time: no work directory made


def test_run_with_a_current_report_is_refused_through_the_cli(cli, report, tmp_path):
    before = _snapshot(report / "report")
    result = cli("gate", report / "report", report / "report", "--run", "--work-dir", tmp_path)
    assert_clean_failure(result, 2, "not both", before, [report / "report"])
