"""What a person sees, on an 80-column terminal and in a log file (not a terminal): tables whose
headers are never cut, the columns left out named, and one progress line per stage and per
configuration off a terminal (a CI log reads like a story)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from alexnet_deploy.cli.console import err_console, out_console

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
# a header or cell cut to fewer than 3 characters and an ellipsis ("ba…", "2…")
CUT = re.compile(r"[│┃]\s*\S{0,2}…\s*[│┃]")


@pytest.fixture(params=["terminal-80", "log-file"])
def where(request, monkeypatch):
    """Both consoles as an 80-column terminal, or as a file that is not a terminal."""
    terminal = request.param == "terminal-80"
    for console in (out_console, err_console):
        monkeypatch.setattr(console, "_force_terminal", terminal)
        monkeypatch.setattr(console, "_width", 80 if terminal else None)
    return request.param


def _clean(text: str) -> str:
    return ANSI.sub("", text)


def _assert_readable(result, where: str, stages: list[str]):
    out, err = _clean(result.stdout), _clean(result.stderr)
    assert result.exit_code == 0, err
    assert not CUT.search(out), out
    assert "\r" not in err
    if where == "log-file":
        for stage in stages:
            assert re.search(rf"^\[\d+:\d\d\] .*{stage}", err, re.M), (stage, err)
    else:
        assert all(len(line) <= 80 for line in out.splitlines() if "│" in line), out


@pytest.fixture
def model(digits, tmp_path):
    path = tmp_path / "m.onnx"
    shutil.copy(digits["onnx"], path)
    return path


FAST = ("--min-seconds", "0.1", "--max-seconds", "0.3", "--no-roofline", "--no-direct")


def test_bench(cli, where, model, digits, tmp_path):
    result = cli(
        "bench", "--model", model, "--data", digits["heldout_dir"], "--backend", "ort",
        "--backend", "openvino", "--precision", "fp32", "--precision", "int8", "--batch", "1",
        *FAST, "--work-dir", tmp_path / "w", "--out", tmp_path / "r",
    )  # fmt: skip
    _assert_readable(result, where, ["calibrating INT8", r"1/4 ort fp32 b1 latency", "4/4"])
    out = _clean(result.stdout)
    assert "backend" in out and "img/s" in out
    if where == "terminal-80":
        assert "more column(s) not shown at 80 columns" in out and "--format" in out
    else:
        assert "agree (emul.)" in out and "not shown" not in out  # every column, whole


def test_calibrate(cli, where, model, digits):
    result = cli("calibrate", model, "--data", digits["heldout_dir"], "--target", "cpu")
    _assert_readable(result, where, ["calibrating"])


def test_gate(cli, where, model, digits, tmp_path):
    # the layout is under test, not this machine's noise: the current report is the baseline's
    # own copy (CI once saw two separate 0.3 s runs of the test network more than 50% apart)
    assert cli(
        "--quiet", "bench", "--model", model, "--data", digits["heldout_dir"],
        "--backend", "ort", "--precision", "fp32", "--batch", "1", *FAST,
        "--work-dir", tmp_path / "w", "--out", tmp_path / "a",
    ).exit_code == 0  # fmt: skip
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    result = cli("gate", tmp_path / "a", tmp_path / "b")
    _assert_readable(result, where, [])
    assert "gate PASS" in result.stdout and "p50" in _clean(result.stdout)


def test_tune(cli, where, model, digits, tmp_path):
    result = cli(
        "tune", "--model", model, "--data", digits["heldout_dir"], "--backend", "ort",
        "--precision", "fp32", "--batch", "1,2", "--streams", "1", "--min-seconds", "0.1",
        "--max-seconds", "0.2", "--work-dir", tmp_path / "w",
    )  # fmt: skip
    _assert_readable(result, where, ["tuning"])


def test_doctor(cli, where):
    result = cli("doctor")
    _assert_readable(result, where, [])
    assert "cpu int8 class" in _clean(result.stdout)


def test_quiet_prints_results_only(cli, model, digits, tmp_path, monkeypatch):
    for console in (out_console, err_console):
        monkeypatch.setattr(console, "_force_terminal", False)
    result = cli(
        "--quiet", "bench", "--model", model, "--backend", "ort", "--precision", "fp32",
        "--batch", "1", *FAST, "--work-dir", tmp_path / "w", "--out", tmp_path / "r",
    )  # fmt: skip
    assert result.exit_code == 0 and not re.search(r"^\[\d+:\d\d\]", result.stderr, re.M)
    assert "p50 ms" in result.stdout


def test_format_gives_stdout_the_table_alone(cli, model, digits, tmp_path):
    """`--format csv|json|md`: a pipe gets the table and nothing else; the rest on stderr."""
    import io
    import json

    import polars as pl

    result = cli(
        "--quiet", "bench", "--model", model, "--backend", "ort", "--precision", "fp32",
        "--batch", "1", *FAST, "--work-dir", tmp_path / "w", "--out", tmp_path / "r",
        "--format", "csv",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    frame = pl.read_csv(io.StringIO(result.stdout))
    assert frame.height == 1 and {"backend", "img/s", "p50 ms"} <= set(frame.columns)
    assert "reports:" in result.stderr
    gate = cli("gate", tmp_path / "r", tmp_path / "r", "--format", "json")
    verdicts = json.loads(gate.stdout)
    assert gate.exit_code == 0 and {v["metric"] for v in verdicts} >= {"p50", "fidelity"}
    assert "gate PASS" in gate.stderr
    calibrate = cli("calibrate", model, "--data", digits["heldout_dir"], "--format", "md")
    assert calibrate.exit_code == 0 and calibrate.stdout.startswith("| method")


def test_a_log_file_gets_every_cell_whole_on_one_line(cli, model, tmp_path, monkeypatch):
    """Off a terminal no cell wraps, however long (CI once saw ``cat.j`` / ``pg`` on two lines:
    rich caps ``print(width=)`` at the console's own width, 80 off a terminal)."""
    for console in (out_console, err_console):
        monkeypatch.setattr(console, "_force_terminal", False)
        monkeypatch.setattr(console, "_width", None)
    deep = tmp_path / ("a-folder-name-long-enough-to-wrap-" * 3) / "photos"
    deep.mkdir(parents=True)
    image = deep / "cat.jpg"
    shutil.copy(Path(__file__).parents[1] / "alexnet_deploy" / "data" / "images" / "cat.jpg", image)
    result = cli("predict", image, "--model", model, "--backend", "ort", "--work-dir", tmp_path)
    assert result.exit_code == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if "│" in line]
    assert len(rows) == 1 and str(image) in rows[0], result.stdout
    assert len(rows[0]) > 80
