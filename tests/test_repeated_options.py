"""Options given more than once (issue #24, part 6): every multi-value option takes
``--batch 1 --batch 32`` and ``--batch 1,32`` alike, through one parser (cli/options.py's
``split_values``); a value given twice is refused; an option that takes one value, given twice,
is refused with one 'Error:' line before any work instead of the last silently winning
(cli/repeated.py). And the artifact stages a job needs are typed (part 1): old reports' strings
load into them."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import pytest
import typer

from alexnet_deploy.artifacts import Stage, StageStatus
from alexnet_deploy.cli import app
from alexnet_deploy.errors import UsageError
from tests.test_faults import _snapshot, assert_clean_failure

ROOT = typer.main.get_command(app)
DOCS = Path(__file__).resolve().parents[1] / "docs"

# the options that issue #24 found as one comma-separated string or as a list of one form
ISSUE_OPTIONS = {
    "bench": {"backend", "precision", "batch", "mode", "quantizer", "threads", "streams",
              "percentiles"},
    "tune": {"backend", "precision", "batch", "streams", "threads", "quantizer"},
    "plan": {"backend", "batch", "keep_layer"},
    "calibrate": {"target"},
    "gate": {"threshold"},
}  # fmt: skip


def _multi_value_options():
    """(command, Click option) for every option that may be given more than once."""
    return [
        (name, p)
        for name, command in sorted(ROOT.commands.items())
        for p in command.params
        if p.param_type_name == "option" and p.multiple
    ]


def _required_arguments(command) -> list[str]:
    return [
        "x" for p in command.params if p.param_type_name == "argument" and p.required
    ]  # never read: parsing stops before the command runs


def _parsed(name: str, args: list[str]):
    command = ROOT.commands[name]
    return command.make_context(name, [*_required_arguments(command), *args]).params


def _two_values(option) -> tuple[str, str]:
    """Two valid, different values of ``option``: its first two choices, else by its kind."""
    metavar = option.metavar.strip("<>")
    return {"int": ("1", "32"), "float": ("50", "99"), "str": ("a", "b")}.get(
        metavar, tuple(metavar.split("|")[:2])
    )


def test_every_multi_value_option_goes_through_the_one_parser():
    """Read from the Typer app itself: each list option of each command has split_values as
    its callback, and the options the issue named are among them (none left a plain string)."""
    found: dict[str, set[str]] = {}
    for command in app.registered_commands:
        hints = typing.get_type_hints(command.callback, include_extras=True)
        for param, hint in hints.items():
            if typing.get_origin(hint) is not typing.Annotated:
                continue
            base, info = typing.get_args(hint)[0], typing.get_args(hint)[1]
            if list not in (
                typing.get_origin(base),
                *map(typing.get_origin, typing.get_args(base)),
            ):
                continue
            if isinstance(info, typer.models.ArgumentInfo):
                continue  # predict's IMAGE... paths: file names may hold commas
            assert getattr(info.callback, "splits_values", False), (command.callback, param)
            found.setdefault(command.callback.__name__, set()).add(param)
    for name, options in ISSUE_OPTIONS.items():
        assert options <= found.get(name, set()), (name, options - found.get(name, set()))
    click_level = {(name, p.name) for name, p in _multi_value_options()}
    assert click_level == {(c, o) for c, opts in found.items() for o in opts}


@pytest.mark.parametrize(
    ("name", "option"), _multi_value_options(), ids=lambda v: getattr(v, "name", v)
)
def test_every_multi_value_option_takes_both_forms_and_refuses_a_value_twice(name, option):
    flag = option.opts[0]
    a, b = _two_values(option)
    repeated = _parsed(name, [flag, a, flag, b])[option.name]
    assert repeated == _parsed(name, [flag, f"{a},{b}"])[option.name]
    assert repeated == _parsed(name, [flag, f" {a} , {b} "])[option.name]
    assert len(repeated) == 2 and repeated[0] != repeated[1]
    with pytest.raises(UsageError, match=f"{flag} {a} given twice"):
        _parsed(name, [flag, f"{a},{b}", flag, a])
    with pytest.raises(UsageError, match="has an empty value"):
        _parsed(name, [flag, f"{a},"])


def test_bench_matrix_is_the_same_with_repeated_and_comma_separated_batches(
    cli, digits_model, digits, tmp_path
):
    """Before: --batch was one string, so '--batch 1 --batch 2' ran batch 2 alone."""
    reports = {}
    for form, batches in {"repeated": ["--batch", "1", "--batch", "2"],
                          "comma": ["--batch", "1,2"]}.items():  # fmt: skip
        result = cli(
            "bench", "--model", digits_model, "--data", digits["heldout_dir"],
            "--backend", "ort", "--precision", "fp32", *batches,
            "--min-seconds", "0.05", "--max-seconds", "0.1", "--warmup-seconds", "0",
            "--no-roofline", "--no-direct", "--format", "json",
            "--work-dir", tmp_path / "work", "--out", tmp_path / form,
        )  # fmt: skip
        assert result.exit_code == 0, result.stderr
        reports[form] = json.loads((tmp_path / form / "bench-summary.json").read_text())
    rows = {
        form: [(r["backend"], r["precision"], r["batch"]) for r in report["rows"]]
        for form, report in reports.items()
    }
    assert rows["repeated"] == rows["comma"] == [("ort", "fp32", 1), ("ort", "fp32", 2)]
    assert reports["repeated"]["config"]["matrix"] == reports["comma"]["config"]["matrix"]
    # the typed stages are written as the strings reports always had
    assert reports["comma"]["stages"] == {
        "export": "given", "fp16": "not needed", "int8": "not needed"
    }  # fmt: skip


def test_a_value_given_twice_is_refused_not_dropped(cli, tmp_path):
    before = _snapshot(tmp_path)
    result = cli("bench", "--batch", "1,32", "--batch", "32", "--work-dir", tmp_path / "w")
    assert_clean_failure(result, 2, "--batch 32 given twice")
    result = cli("gate", "a", "b", "--threshold", "p99=0.1", "--threshold", "p99=0.2")
    assert_clean_failure(result, 2, "--threshold sets p99 twice")
    assert _snapshot(tmp_path) == before and not (tmp_path / "w").exists()


def test_a_general_threshold_does_not_drop_a_named_one_given_before_it():
    """Before: '--threshold p99=0.2 --threshold 0.1' set p99 to 0.1 (the order decided)."""
    from alexnet_deploy.gate.thresholds import Thresholds

    for specs in (["p99=0.2", "0.1"], ["0.1", "p99=0.2"], ["p99=0.2,0.1"]):
        values = Thresholds.parse([s for spec in specs for s in spec.split(",")]).values
        assert values["p99"] == 0.2 and values["p50"] == 0.1, specs
    with pytest.raises(UsageError, match="sets every metric twice"):
        Thresholds.parse(["0.1", "0.2"])


SINGLE_TWICE = [
    (("export", "-o", "{t}/a.onnx", "-o", "{t}/b.onnx"), "--output given twice"),
    (("bench", "--model", "{t}/a.onnx", "--model", "{t}/b.onnx", "--work-dir", "{t}/w"),
     "--model given twice ('{t}/a.onnx', '{t}/b.onnx')"),
    (("bench", "--out", "{t}/x", "--out={t}/y"), "--out given twice"),
    (("tune", "-o", "{t}/x.json", "--output", "{t}/y.json"), "--output given twice"),
    (("build", "{t}/m.onnx", "--backend", "ort", "--backend", "openvino"), "--backend given twice"),
    (("bench", "--direct", "--no-direct"), "--direct/--no-direct given twice"),
    (("--quiet", "-q", "doctor"), "--quiet/-q given twice"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"), SINGLE_TWICE, ids=[" ".join(a[:2]) for a, _ in SINGLE_TWICE]
)
def test_a_single_value_option_given_twice_is_refused_before_any_work(
    cli, tmp_path, monkeypatch, args, message
):
    """Before: the last one silently won (Typer keeps it)."""
    monkeypatch.chdir(tmp_path)
    before = _snapshot(tmp_path)
    result = cli(*(a.format(t=tmp_path) for a in args))
    assert_clean_failure(result, 2, message.format(t=tmp_path))
    assert _snapshot(tmp_path) == before and list(tmp_path.iterdir()) == []


def _single_value_options():
    return [
        (name, p)
        for name, command in sorted(ROOT.commands.items())
        for p in command.params
        if p.param_type_name == "option" and not p.multiple
    ]


@pytest.mark.parametrize(
    ("name", "option"), _single_value_options(), ids=lambda v: getattr(v, "name", v)
)
def test_every_single_value_option_of_every_command_is_refused_twice(
    cli, tmp_path, monkeypatch, name, option
):
    """Read from the app: no option of any command lets a second value replace the first."""
    monkeypatch.chdir(tmp_path)
    flag = option.opts[0]
    once = [flag] if option.is_flag else [flag, "x"]
    result = cli(name, *_required_arguments(ROOT.commands[name]), *once, *once)
    assert_clean_failure(result, 2, f"given twice ({'--' if option.is_flag else repr('x')}")
    assert list(tmp_path.iterdir()) == []


def test_old_reports_stages_load_as_the_typed_stages():
    """The committed reports, written before the stages were typed, load into Stage and
    StageStatus; the typed values write the same strings back."""
    reports = sorted(DOCS.glob("benchmarks/**/bench-summary.json"))
    assert reports
    for path in reports:
        stages = json.loads(path.read_text())["stages"]
        typed = {Stage(k): StageStatus(v) for k, v in stages.items()}
        assert json.loads(json.dumps(typed)) == stages


def test_a_job_needs_typed_stages():
    from alexnet_deploy.workflow import artifacts_needed

    assert artifacts_needed(("fp32", "int8"), ("qdq", "nncf")) == {Stage.INT8, Stage.INT8_NNCF}
    assert artifacts_needed(("fp32", "fp16"), ("qdq",)) == {Stage.FP16}
    assert artifacts_needed(("int8",), ("nncf",), served=True) == frozenset()
    assert Stage.making("int8", "nncf") is Stage.INT8_NNCF and Stage.making("fp32") is Stage.EXPORT
