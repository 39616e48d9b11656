"""Output-path safety (issue #27) through the real CLI: an output that is an input, the
current or work directory, a parent of an input, or a directory or file this tool did not
write is refused before any work, with one 'Error:' line and every file that was there before
byte for byte as it was; --force replaces only the tool's own outputs; existence is checked
again once the lock is held; an interrupt says exactly which files it changed."""

from __future__ import annotations

import json
import shutil

import pytest

from alexnet_deploy.artifacts import ArtifactSet
from alexnet_deploy.outputs import MARKER
from tests.test_faults import _snapshot, assert_clean_failure, start_lock_holder

PLAN_FAST = ("--calib-size", "64", "--eval-size", "64", "--target", "tensorrt")


@pytest.fixture
def model_dir(digits_artifacts, tmp_path):
    """A private copy of the trained network's folder: the FP32 model, its FP16 and INT8
    files, calibration's report, plus a file of the user's."""
    root = tmp_path / "models"
    shutil.copytree(digits_artifacts["model"].parent, root, ignore=shutil.ignore_patterns("work"))
    (root / "notes.txt").write_text("the user's own notes")
    return root


def _model(root):
    return root / "digits-tiny.onnx"


# --- package --triton: never the current directory, the model's folder, nor a stranger's ---


def test_package_into_the_current_directory_is_refused(cli, model_dir, tmp_path, monkeypatch):
    """'cd sb2 && package --triton "" --model ../m.onnx --force' deleted everything in sb2,
    then printed a traceback."""
    sandbox = tmp_path / "sb2"
    sandbox.mkdir()
    (sandbox / "keep.txt").write_text("a file of the user's")
    monkeypatch.chdir(sandbox)
    before = _snapshot(sandbox, model_dir)
    result = cli(
        "package", "--triton", "", "--model", _model(model_dir), "--force",
        "--work-dir", tmp_path / "w", "--no-openvino",
    )  # fmt: skip
    assert_clean_failure(result, 2, "is the current directory", before, [sandbox, model_dir])


def test_package_into_the_models_own_folder_is_refused(cli, model_dir, tmp_path):
    """'package --triton DIR --model DIR/m.onnx --force' deleted the model's folder: the FP32
    model, its INT8 files, its report and a file of the user's."""
    before = _snapshot(model_dir)
    result = cli(
        "package", "--triton", model_dir, "--model", _model(model_dir), "--force",
        "--work-dir", tmp_path / "w", "--no-openvino",
    )  # fmt: skip
    assert_clean_failure(result, 2, "holds the input model", before, [model_dir])


def test_package_over_a_file_is_refused(cli, model_dir, tmp_path):
    """'package --triton FILE --force': a traceback (rmtree on a file)."""
    target = tmp_path / "repo"
    target.write_text("a file, not a repository")
    before = _snapshot(tmp_path)
    result = cli(
        "package", "--triton", target, "--model", _model(model_dir), "--force",
        "--work-dir", tmp_path / "w", "--no-openvino",
    )  # fmt: skip
    assert_clean_failure(result, 1, "is a file, not a directory", before, [tmp_path])


def test_package_force_replaces_only_a_repository_it_made(cli, model_dir, tmp_path):
    """A directory exists: --force used to delete it whatever it held; now only a repository
    carrying the tool's marker is replaced."""
    args = ("--model", _model(model_dir), "--work-dir", tmp_path / "w", "--no-openvino")
    stranger = tmp_path / "someone"
    stranger.mkdir()
    (stranger / "data.bin").write_bytes(b"\x01\x02")
    before = _snapshot(stranger)
    result = cli("package", "--triton", stranger, "--force", *args)
    assert_clean_failure(result, 1, f"has no {MARKER}", before, [stranger])

    repo = tmp_path / "repo"
    assert cli("package", "--triton", repo, *args).exit_code == 0
    assert json.loads((repo / MARKER).read_text())["command"] == "package"
    before = _snapshot(repo)
    assert_clean_failure(
        cli("package", "--triton", repo, *args), 1, "already exists", before, [repo]
    )
    again = cli("package", "--triton", repo, "--force", *args)
    assert again.exit_code == 0, again.stderr
    assert (repo / MARKER).is_file()  # its own repository: replaced whole
    (repo / "my_notes.txt").write_text("left by hand")  # the user's file, added afterwards
    before = _snapshot(repo)
    result = cli("package", "--triton", repo, "--force", *args)
    assert_clean_failure(result, 1, "which alexnet-deploy did not write there", before, [repo])


# --- compare and plan: a plot or report never lands on an input ---


def test_compare_plot_over_the_reference_is_refused(cli, model_dir):
    """'compare REF CAND --plot REF' overwrote the reference model with a PNG."""
    reference = _model(model_dir)
    candidate = ArtifactSet(reference).int8("cpu")
    before = _snapshot(model_dir)
    result = cli("compare", reference, candidate, "--plot", reference)
    assert_clean_failure(result, 2, "is the reference model", before, [model_dir])


def test_compare_out_onto_a_file_or_a_strangers_report(cli, model_dir, tmp_path):
    """'compare --out FILE': a traceback; a directory holding someone's compare.md had it
    replaced."""
    reference = _model(model_dir)
    candidate = ArtifactSet(reference).int8("cpu")
    target = tmp_path / "results"
    target.write_text("a file")
    before = _snapshot(tmp_path)
    result = cli("compare", reference, candidate, "--out", target)
    assert_clean_failure(result, 1, "is a file, not a directory", before, [tmp_path])
    target.unlink()
    target.mkdir()
    (target / "compare.md").write_text("# my own notes on the comparison")
    before = _snapshot(tmp_path)
    result = cli("compare", reference, candidate, "--out", target)
    assert_clean_failure(result, 1, "which alexnet-deploy did not write", before, [tmp_path])


def test_plan_plot_over_the_model_is_refused(cli, model_dir, tmp_path):
    """'plan m.onnx ... --plot m.onnx' overwrote the model with a PNG, without --force."""
    model = _model(model_dir)
    before = _snapshot(model_dir)
    result = cli("plan", model, "--plot", model, "-o", tmp_path / "o", "--work-dir", tmp_path / "w")
    assert_clean_failure(result, 2, "is the input model", before, [model_dir])
    assert not (tmp_path / "o").exists()


# --- gate: its result never replaces the report it judges ---


def test_gate_json_over_the_current_report_is_refused(cli, report, tmp_path):
    """'gate BASE CUR --json CUR/bench-summary.json' replaced the current report with the
    gate's result; every later gate on it failed."""
    current = tmp_path / "current"
    shutil.copytree(report / "report", current)
    before = _snapshot(current)
    result = cli("gate", report / "report", current, "--json", current / "bench-summary.json")
    assert_clean_failure(result, 2, "is the current report", before, [current])
    assert "gate " not in result.stdout  # refused before the verdict
    beside = cli("gate", report / "report", current, "--md", current / "gate.md")
    assert beside.exit_code == 0, beside.stderr  # a summary beside the report is fine (CI)


def test_gate_outputs_that_collide_or_replace_a_strangers_directory(cli, report, tmp_path):
    before = _snapshot(report / "report")
    same = tmp_path / "gate.out"
    result = cli("gate", report / "report", report / "report", "--json", same, "--md", same)
    assert_clean_failure(result, 2, "--json and --md both name", before, [report / "report"])

    stranger = tmp_path / "mine"
    stranger.mkdir()
    (stranger / "bench-summary.json").write_text("{}")
    (stranger / "thesis.tex").write_text("years of work")
    before = _snapshot(stranger, report / "report")
    result = cli("gate", stranger, report / "report", "--update-baseline")
    assert_clean_failure(
        result, 1, "was not made by alexnet-deploy", before, [stranger, report / "report"]
    )
    holder = tmp_path / "history"
    shutil.copytree(report / "report", holder / "run-1")
    before = _snapshot(holder)
    result = cli("gate", holder, holder / "run-1", "--update-baseline")
    assert_clean_failure(result, 2, "holds the current report", before, [holder])


def test_update_baseline_replaces_a_report_made_before_markers(cli, report, tmp_path):
    """A baseline written by an older version (no marker, only report files) is still the
    tool's own: accepted, and marked from then on."""
    baseline = tmp_path / "baseline"
    shutil.copytree(report / "report", baseline)
    (baseline / MARKER).unlink()  # as an older version wrote it
    result = cli("gate", baseline, report / "report", "--update-baseline")
    assert result.exit_code == 0, result.stderr
    assert (baseline / MARKER).is_file() and (baseline / "bench-summary.json").is_file()


# --- calibrate: the report goes with the outputs it describes ---


def test_calibrate_elsewhere_keeps_the_report_of_the_int8_files_there(
    cli, digits, model_dir, monkeypatch
):
    """'calibrate m.onnx -o elsewhere_{target}.onnx' rewrote MODEL_DIR/m.int8.report.json, the
    report of the INT8 files already there."""
    monkeypatch.chdir(model_dir)
    model = _model(model_dir)
    before = _snapshot(model_dir)
    result = cli(
        "calibrate", model.name, "--target", "cpu", "--data", digits["train_dir"],
        "--calib-size", "128", "--eval-data", digits["heldout_dir"], "--eval-size", "64",
        "-o", "elsewhere_{target}.onnx",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    after = _snapshot(model_dir)
    assert {k: v for k, v in after.items() if k in before} == before  # the old report too
    report = json.loads((model_dir / "elsewhere.report.json").read_text())
    assert list(report["artifacts"]) == ["cpu"]
    assert report["artifacts"]["cpu"]["path"] == "elsewhere_cpu.onnx"


def test_a_failed_or_forced_calibrate_keeps_a_report_it_may_not_replace(
    cli, digits, model_dir, tmp_path
):
    """A calibration of another form (whose INT8 file does not exist yet) rewrote the report
    of the INT8 files already there; --force replaced a file the tool never wrote."""
    model = _model(model_dir)
    before = _snapshot(model_dir)
    result = cli("calibrate", model, "--target", "tensorrt", "--data", digits["heldout_dir"])
    assert_clean_failure(result, 1, "report", before, [model_dir])
    assert "already exists" in result.stderr and "int8.report.json" in result.stderr

    out = tmp_path / "out"
    out.mkdir()
    (out / "r.report.json").write_text('{"mine": true}')
    before = _snapshot(out, model_dir)
    result = cli("calibrate", model, "--target", "cpu", "-o", out / "r.onnx", "--force")
    assert_clean_failure(
        result, 1, "was not written by alexnet-deploy (a JSON file without this tool's schema)",
        before, [out, model_dir],
    )  # fmt: skip


# --- every command: an output that is an input or the current directory ---


def test_export_over_its_checkpoint_or_a_foreign_model(cli, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    weights = tmp_path / "w.pth"
    weights.write_bytes(b"a checkpoint's bytes")
    foreign = tmp_path / "theirs.onnx"
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "theirs",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )  # fmt: skip
    onnx.save(helper.make_model(graph), str(foreign))
    before = _snapshot(tmp_path)
    result = cli("export", "--weights", weights, "-o", weights, "--force")
    assert_clean_failure(result, 2, "is the checkpoint", before, [tmp_path])
    result = cli("export", "-o", foreign, "--force")
    assert_clean_failure(result, 1, "without this tool's metadata", before, [tmp_path])


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (("fp16", "{model}", "-o", "{model}", "--force"), "-o {model} is the input model"),
        (("tune", "--model", "{model}", "-o", "{model}", "--work-dir", "{work}"), "is the model"),
        (("bench", "--model", "{model}", "--out", ".", "--work-dir", "{work}"),
         "--out . is the current directory"),
        (("bench", "--model", "{model}", "--out", "{dir}", "--work-dir", "{work}"),
         "holds the model"),
        (("plan", "{model}", "-o", "{work}", "--work-dir", "{work}"), "is the work directory"),
        (("compare", "{model}", "{candidate}", "--out", "{dir}"), "holds the reference model"),
    ],
)  # fmt: skip
def test_an_output_over_an_input_or_a_place_it_would_destroy(
    cli, model_dir, tmp_path, monkeypatch, command, message
):
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    model = _model(model_dir)
    work = tmp_path / "w"
    work.mkdir()
    names = {
        "model": model, "dir": model_dir, "work": work,
        "candidate": ArtifactSet(model).int8("cpu"),
    }  # fmt: skip
    before = _snapshot(tmp_path)
    result = cli(*(a.format(**names) for a in command))
    assert_clean_failure(result, 2, message.format(**names), before, [tmp_path])


# --- existence is checked once the lock is held (case 5) ---


def _hold_lock_then_write(directory, path, source, write_after: float, release_after: float):
    """Another run holding DIRECTORY's lock, which writes ``path`` (a copy of ``source``) into
    a directory it makes and marks after ``write_after`` s, then releases it; returns once it
    holds the lock."""
    code = (
        "import shutil, time\nfrom pathlib import Path\n"
        "from alexnet_deploy.locking import directory_lock\n"
        "from alexnet_deploy.outputs import mark_directory\n"
        f"with directory_lock({str(directory)!r}, 'plan'):\n"
        f"    time.sleep({write_after})\n"
        f"    Path({str(path.parent)!r}).mkdir(parents=True)\n"
        f"    mark_directory({str(path.parent)!r}, 'plan')\n"
        f"    shutil.copyfile({str(source)!r}, {str(path)!r})\n"
        f"    time.sleep({release_after - write_after})\n"
    )
    return start_lock_holder(directory, code)


def test_a_plan_that_waited_for_another_does_not_overwrite_its_outputs(
    cli, digits, tmp_path, caplog
):
    """Two 'plan ... -o o3' started 0.3 s apart: the second waited for the first's lock, then
    overwrote its outputs without --force (the existence check ran before the lock)."""
    import logging

    from alexnet_deploy.calib.fidelity import ort_logits  # noqa: F401 (imported: no delay)
    from alexnet_deploy.onnx_model import read_artifact
    from alexnet_deploy.precision.planner import plan_precision  # noqa: F401

    model = tmp_path / "m.onnx"
    shutil.copy(digits["onnx"], model)
    read_artifact(model)
    out = tmp_path / "o3"
    theirs = ArtifactSet(model).plan("tensorrt", out)
    holder = _hold_lock_then_write(
        ArtifactSet(model).scratch_root(), theirs, digits["onnx"], write_after=4, release_after=5
    )
    try:
        with caplog.at_level(logging.WARNING):
            result = cli(
                "plan", model, "--data", digits["train_dir"], "--eval-data",
                digits["heldout_dir"], *PLAN_FAST, "-o", out, "--work-dir", tmp_path / "w",
            )  # fmt: skip
    finally:
        holder.wait()
    # it got past the first check (nothing there yet) and waited for the other run's lock
    assert any("waits for pid" in r.getMessage() for r in caplog.records)
    assert_clean_failure(result, 1, "already holds a plan result")
    assert (out / theirs.name).read_bytes() == digits["onnx"].read_bytes()  # theirs, kept
    assert sorted(p.name for p in out.iterdir()) == sorted([MARKER, theirs.name])


# --- an interrupt says exactly what it changed (case 6) ---


def test_an_interrupted_plan_names_exactly_the_files_it_replaced(
    cli, digits, tmp_path, monkeypatch
):
    """'plan ... --force' interrupted said 'files that were there before are as they were'
    while plan.json/.csv/.md and the plan file had been replaced (and the plot had not)."""
    import alexnet_deploy.precision.plan_report as plan_report

    model = tmp_path / "m.onnx"
    shutil.copy(digits["onnx"], model)
    out, plot = tmp_path / "o6", tmp_path / "plan.png"
    args = (
        "plan", model, "--data", digits["train_dir"], "--eval-data", digits["heldout_dir"],
        *PLAN_FAST, "-o", out, "--plot", plot, "--work-dir", tmp_path / "w",
    )  # fmt: skip
    first = cli(*args)
    assert first.exit_code == 0, first.stderr
    plot_before = plot.read_bytes()

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(plan_report, "plot_plans", interrupted)  # Ctrl-C while plotting
    result = cli(*args, "--force")
    assert result.exit_code == 130 and "Traceback" not in result.stderr
    message = next(line for line in result.stderr.splitlines() if "Interrupted" in line)
    # the plan file is written, then the plot drawn (api.plan), then the reports (the CLI)
    replaced = ArtifactSet(model).plan("tensorrt", out)
    assert message.startswith(f"Interrupted: this run replaced {replaced} before"), message
    assert str(plot) not in message and "created" not in message, message
    assert all(str(out / n) not in message for n in ("plan.json", "plan.csv", "plan.md"))
    assert plot.read_bytes() == plot_before  # the plot was not redrawn: it is as it was


# --- an existing file is replaced only when this tool wrote it (a new user's trial) ---


def test_a_plot_never_replaces_a_file_the_tool_did_not_write(cli, model_dir, tmp_path):
    """'compare --plot notes.txt' (compare has no --force) and 'plan --plot notes.txt --force'
    replaced the user's file with a PNG; a plot of the tool's own is still replaced."""
    reference = _model(model_dir)
    candidate = ArtifactSet(reference).int8("cpu")
    notes = model_dir / "notes.txt"
    before = _snapshot(model_dir)
    result = cli("compare", reference, candidate, "--plot", notes)
    assert_clean_failure(result, 1, "not a kind of file alexnet-deploy writes", before, [model_dir])
    result = cli(
        "plan", reference, "--plot", notes, "-o", tmp_path / "o", "--force",
        "--work-dir", tmp_path / "w",
    )  # fmt: skip
    assert_clean_failure(result, 1, "not a kind of file alexnet-deploy writes", before, [model_dir])
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"\x89PNG\r\n\x1a\n a photo of the user's")
    result = cli("compare", reference, candidate, "--plot", photo)
    assert result.exit_code == 1 and "an image this tool did not plot" in result.stderr
    plot = tmp_path / "layers.png"
    assert cli("compare", reference, candidate, "--plot", plot).exit_code == 0
    again = cli("compare", reference, candidate, "--plot", plot)  # its own plot: replaced
    assert again.exit_code == 0, again.stderr


def test_export_force_never_replaces_a_file_of_another_kind(cli, tmp_path):
    """'export -o user.txt --force' replaced the user's text file with a 244 MB model."""
    user = tmp_path / "user.txt"
    user.write_text("precious")
    before = _snapshot(tmp_path)
    result = cli("export", "-o", user, "--force")
    assert_clean_failure(result, 1, "not a kind of file alexnet-deploy writes", before, [tmp_path])


def test_gate_never_writes_over_a_file_of_the_reports_it_reads(cli, report, tmp_path):
    """'gate B C --md C/bench-summary.md' (or the baseline's, or --json onto the CSV) replaced
    a report's own file; '--json notes.txt' a user's. The gate's own earlier outputs are
    replaced, so a CI step can run again."""
    current = tmp_path / "current"
    shutil.copytree(report / "report", current)
    (tmp_path / "notes.txt").write_text("mine")
    for option, target in [
        ("--md", current / "bench-summary.md"),
        ("--md", report / "report" / "bench-summary.md"),
        ("--json", current / "bench-summary.csv"),
        ("--junit", current / "bench-report.png"),
    ]:
        before = _snapshot(tmp_path, report / "report")
        result = cli("gate", report / "report", current, option, target)
        assert_clean_failure(result, 2, "report: writing there would destroy it", before,
                             [tmp_path, report / "report"])  # fmt: skip
    before = _snapshot(tmp_path)
    result = cli("gate", report / "report", current, "--json", tmp_path / "notes.txt")
    assert_clean_failure(result, 1, "not a kind of file alexnet-deploy writes", before, [tmp_path])
    outputs = ("--json", tmp_path / "g.json", "--md", tmp_path / "g.md", "--junit", tmp_path / "g.xml")
    for _ in range(2):  # the second run replaces the first's outputs
        result = cli("gate", report / "report", current, *outputs)
        assert result.exit_code == 0, result.stderr
    (tmp_path / "g.md").write_text("# my own summary")
    before = _snapshot(tmp_path)
    result = cli("gate", report / "report", current, "--md", tmp_path / "g.md")
    assert_clean_failure(result, 1, "a md file this tool did not write", before, [tmp_path])


def test_the_calibration_cache_is_named_among_a_runs_changes(digits, tmp_path):
    """An interrupted plan's message left out the range cache it had written (ONNX Runtime's
    own writer); the cache is now published through the tool's journal."""
    import numpy as np

    from alexnet_deploy.calib.config import CalibrationConfig
    from alexnet_deploy.calib.ranges import collect_ranges
    from alexnet_deploy.calib.samples import Split
    from alexnet_deploy.fileio import recording_changes
    from alexnet_deploy.onnx_model import read_artifact

    info = read_artifact(digits["onnx"])
    images = np.random.default_rng(0).standard_normal((8, *info.image_shape), dtype=np.float32)
    split = Split(images, [f"s{i}" for i in range(8)], [""] * 8)
    with recording_changes() as changes:
        ranges = collect_ranges(digits["onnx"], "sha", info.input.name, split, "data",
                                CalibrationConfig.minmax(), tmp_path / "cache", 4)  # fmt: skip
    assert ranges.path.is_file() and ranges.path in changes.created


def test_update_baseline_never_deletes_a_file_added_to_a_bench_report(cli, report, tmp_path):
    """A bench report's directory carries the tool's marker from its creation, with no list of
    files: --update-baseline replaced it whole, a user's notes (or a plan kept in the work
    directory's reports) with it. Now only a report's own files may go."""
    baseline = tmp_path / "baseline"
    shutil.copytree(report / "report", baseline)
    (baseline / "my-notes.txt").write_text("why this baseline was chosen")
    before = _snapshot(baseline)
    result = cli("gate", baseline, report / "report", "--update-baseline")
    assert_clean_failure(result, 1, "holds my-notes.txt", before, [baseline])


def test_the_python_api_checks_its_outputs_as_the_commands_do(report, digits_model, tmp_path,
                                                            monkeypatch):  # fmt: skip
    """api.bench and api.gate skipped the output checks the CLI made."""
    from alexnet_deploy import api
    from alexnet_deploy.errors import AlexnetDeployError

    monkeypatch.chdir(tmp_path)
    with pytest.raises(AlexnetDeployError, match="is the current directory"):
        api.bench(digits_model, out=tmp_path, work_dir=tmp_path / "w")
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "bench-summary.json").write_text("{}")
    (stranger / "thesis.tex").write_text("years of work")
    before = _snapshot(stranger)
    with pytest.raises(AlexnetDeployError, match="not made by alexnet-deploy"):
        api.gate(stranger, report / "report", update_baseline=True, work_dir=tmp_path / "w")
    assert _snapshot(stranger) == before
