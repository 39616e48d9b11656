"""Bad input and faults through the real CLI: each case exits with the right code and one
'Error:' line (no traceback), writes no partial file, and leaves every file that was there
before byte for byte as it was."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from alexnet_deploy.fileio import sha256_file
from alexnet_deploy.locking import LOCK_NAME


def _snapshot(*roots) -> dict:
    files = {}
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            files[str(path)] = sha256_file(path)
    return files


def assert_clean_failure(result, code: int, text: str, before: dict | None = None, roots=()):
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and text in result.stderr, result.stderr
    if before is not None:
        after = _snapshot(*roots)
        assert {k: v for k, v in after.items() if k in before} == before  # nothing changed
        leftovers = [k for k in after if k not in before and not k.endswith(LOCK_NAME)]
        assert not [k for k in leftovers if ".tmp" in k or "/." in k], leftovers


def test_work_dir_that_is_a_file(cli, digits, tmp_path):
    work = tmp_path / "work"
    work.write_text("not a directory")
    result = cli("build", digits["onnx"], "--backend", "ort", "--work-dir", work)
    assert result.exit_code == 2 and "is a file" in result.stderr
    assert "Traceback" not in result.stderr and work.read_text() == "not a directory"


def test_gate_json_into_a_directory_is_refused_before_the_verdict(cli, report, tmp_path):
    before = _snapshot(report / "report")
    result = cli("gate", report / "report", report / "report", "--json", tmp_path)
    assert_clean_failure(result, 1, "is a directory", before, [report / "report"])
    assert "gate PASS" not in result.stdout  # no verdict printed, then lost


def test_corrupt_samples_file_is_a_usage_error(cli, report, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(report / "report", broken)
    samples = broken / "bench-samples.parquet"
    samples.write_bytes(samples.read_bytes()[: len(samples.read_bytes()) // 2])
    before = _snapshot(broken)
    result = cli("gate", report / "report", broken)
    assert_clean_failure(result, 2, "is corrupt", before, [broken])
    assert "gate PASS" not in result.stdout


def test_strict_gate_does_not_print_pass(cli, report, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(report / "report", other)
    data = json.loads((other / "bench-summary.json").read_text())
    data["rows"].append({**data["rows"][0], "batch": 64})  # a configuration the baseline lacks
    (other / "bench-summary.json").write_text(json.dumps(data))
    result = cli("gate", report / "report", other, "--strict", "--threshold", "0.5")
    assert (
        result.exit_code == 2 and "gate FAIL (--strict): 1 check(s) not comparable" in result.stdout
    )
    assert "gate PASS" not in result.stdout


def test_nan_calibration_data_names_the_samples(cli, digits, tmp_path):
    model = tmp_path / "m.onnx"
    shutil.copy(digits["onnx"], model)
    images = np.array(digits["heldout_images"][:40], dtype=np.float32)
    images[7, 0, 0, 0] = np.nan
    images[9, 1, 2, 3] = np.inf
    data = tmp_path / "nan.npy"
    np.save(data, images)
    before = _snapshot(tmp_path)
    result = cli("calibrate", model, "--data", data, "--target", "cpu")
    assert_clean_failure(
        result, 1, "2 of 40 samples hold NaN or Inf values (first: sample 7)", before, [tmp_path]
    )
    assert not (tmp_path / ".cache").exists()  # nothing cached from bad data


def test_a_batch_larger_than_memory_is_refused_before_allocating(cli, digits, tmp_path):
    model = tmp_path / "m.onnx"
    shutil.copy(digits["onnx"], model)
    result = cli(
        "bench", "--model", model, "--data", digits["heldout_dir"], "--backend", "ort",
        "--precision", "fp32", "--batch", "100000000", "--no-direct", "--no-roofline",
        "--work-dir", tmp_path / "w", "--out", tmp_path / "out",
    )  # fmt: skip
    assert_clean_failure(result, 2, "GiB is available")
    assert not (tmp_path / "out").exists()


def test_build_of_a_missing_model(cli, tmp_path):
    result = cli("build", tmp_path / "nope.onnx", "--backend", "ort", "--work-dir", tmp_path / "w")
    assert_clean_failure(result, 1, "not found")


def test_build_of_a_file_that_is_not_onnx(cli, tmp_path):
    bogus = tmp_path / "bogus.onnx"
    bogus.write_bytes(b"\x00\x01 definitely not protobuf" * 10)
    before = _snapshot(tmp_path)
    result = cli("build", bogus, "--backend", "ort", "--work-dir", tmp_path / "w")
    assert_clean_failure(result, 1, "is not an ONNX model", before, [tmp_path])


def test_calibrate_output_over_its_input_is_refused(cli, digits, tmp_path):
    model = tmp_path / "m.onnx"
    shutil.copy(digits["onnx"], model)
    before = _snapshot(tmp_path)
    result = cli("calibrate", model, "--target", "cpu", "-o", model, "--force")
    assert_clean_failure(result, 2, "is the input model", before, [tmp_path])


def test_package_under_a_file(cli, digits_artifacts, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a directory")
    result = cli(
        "package", "--triton", blocker / "repo", "--model", digits_artifacts["model"],
        "--work-dir", tmp_path / "w", "--no-openvino",
    )  # fmt: skip
    assert_clean_failure(result, 1, "is a file, not a directory")
    assert blocker.read_text() == "a file, not a directory"


def test_bench_help_shows_its_config_tables(cli):
    result = cli("bench", "--help")
    assert "[matrix]" in result.stdout and "[rules]" in result.stdout


def test_bench_hints_name_its_own_option(cli, digits, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = cli(
        "bench", "--model", digits["onnx"], "--backend", "ort", "--precision", "fp32",
        "--batch", "1", "--no-direct", "--no-roofline", "--out", blocker / "out",
        "--work-dir", tmp_path / "w",
    )  # fmt: skip
    assert_clean_failure(result, 1, "is a file, not a directory")
    assert "--out" in result.stderr and " -o " not in result.stderr


def _dead_pid() -> int:
    import os

    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid += 1


def test_temporaries_of_killed_runs_are_removed_and_said(tmp_path, caplog):
    """A killed export left a 244 MB hidden .tmp that no later run removed."""
    import logging
    import os

    from alexnet_deploy.fileio import write_text_atomic

    target = tmp_path / "m.onnx"
    stale = tmp_path / f".m.onnx.{_dead_pid()}.abc123.tmp"
    stale.write_bytes(b"x" * 1000)
    live = tmp_path / f".m.onnx.{os.getpid()}.def456.tmp"  # a writer still at work
    live.write_bytes(b"y")
    with caplog.at_level(logging.WARNING):
        write_text_atomic(target, "new")
    assert not stale.exists() and live.exists() and target.read_text() == "new"
    assert any("left by a killed run" in r.getMessage() for r in caplog.records)


def test_a_file_that_appears_meanwhile_is_not_overwritten(tmp_path):
    """Two exports without --force both 'succeeded', the second overwriting the first."""
    from alexnet_deploy.errors import AlexnetDeployError
    from alexnet_deploy.fileio import atomic_path

    target = tmp_path / "m.onnx"
    with (
        pytest.raises(AlexnetDeployError, match="appeared while this run worked"),
        atomic_path(target, replace=False) as tmp,
    ):
        tmp.write_text("ours")
        target.write_text("the other run's")  # the concurrent run finished first
    assert target.read_text() == "the other run's"
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # our temporary is gone


# --- disk full: a small tmpfs (needs root and a mount; skipped with the reason elsewhere) ---


@pytest.fixture
def tiny_disk(tmp_path):
    """A 200 KiB file system: smaller than every artifact of the test network."""
    import os
    import subprocess

    mount = tmp_path / "tiny"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_disk_full_export_is_refused_before_the_work(cli, tiny_disk):
    result = cli("export", "--variant", "paper", "-o", tiny_disk / "m.onnx")
    assert_clean_failure(result, 1, "not enough disk space for the ONNX model", {}, [tiny_disk])
    assert not any(tiny_disk.iterdir())


def test_disk_full_calibrate_is_refused_before_the_work(cli, digits, tiny_disk, tmp_path):
    model = tmp_path / "m.onnx"
    shutil.copy(digits["onnx"], model)
    before = _snapshot(tmp_path)
    result = cli(
        "calibrate", model, "--data", digits["heldout_dir"], "--target", "cpu",
        "-o", tiny_disk / "m.int8-cpu.onnx",
    )  # fmt: skip
    assert_clean_failure(result, 1, "not enough disk space for calibration", before, [tmp_path])
    assert not any(tiny_disk.iterdir())


def test_disk_full_while_bench_writes_its_report(cli, digits, tiny_disk, tmp_path):
    """The report files outgrow the disk mid-write: one line, no traceback, nothing kept."""
    keep = tiny_disk / "keep.txt"
    keep.write_text("a file that was there before")
    filler = tiny_disk / "filler"
    filler.write_bytes(b"\0" * 150_000)  # leaves ~50 KiB: the CSV fits, the plot does not
    before = _snapshot(tiny_disk)
    result = cli(
        "bench", "--model", digits["onnx"], "--data", digits["heldout_dir"], "--backend", "ort",
        "--precision", "fp32", "--batch", "1", "--no-direct", "--no-roofline",
        "--max-seconds", "0.3", "--min-seconds", "0.1",
        "--work-dir", tmp_path / "w", "--out", tiny_disk / "report",
    )  # fmt: skip
    assert_clean_failure(result, 1, "the disk is full", before, [tiny_disk])
    assert not (tiny_disk / "report").exists()


# --- one run at a time per work directory ---


def start_lock_holder(directory, code: str):
    """Another process running ``code`` (which takes DIRECTORY's lock); returns once it holds
    the lock."""
    import subprocess
    import sys
    import time

    from alexnet_deploy.locking import OWNER_NAME

    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 60
    while not (directory / OWNER_NAME).exists():
        assert proc.poll() is None and time.monotonic() < deadline, "holder did not start"
        time.sleep(0.05)
    return proc


def _hold_lock(directory, seconds: float):
    """Another process holding DIRECTORY's lock for ``seconds``; returns once it holds it."""
    return start_lock_holder(
        directory,
        "import sys, time\nfrom alexnet_deploy.locking import directory_lock\n"
        f"with directory_lock({str(directory)!r}, 'build'):\n    time.sleep({seconds})\n",
    )


def test_a_busy_work_dir_names_its_holder(cli, digits, tmp_path, monkeypatch):
    from alexnet_deploy import constants as C

    monkeypatch.setattr(C, "LOCK_WAIT_S", 0.5)
    work = tmp_path / "w"
    holder = _hold_lock(work, 30)
    try:
        result = cli("build", digits["onnx"], "--backend", "ort", "--work-dir", work)
        assert_clean_failure(result, 1, f"is in use by pid {holder.pid} (build")
        assert not (work / "engines").exists()
    finally:
        holder.kill()
        holder.wait()


def test_a_second_build_waits_then_reuses_the_engine(cli, digits, tmp_path, caplog):
    import logging

    work = tmp_path / "w"
    holder = _hold_lock(work, 1.0)
    try:
        with caplog.at_level(logging.WARNING):
            first = cli("build", digits["onnx"], "--backend", "ort", "--work-dir", work)
    finally:
        holder.wait()
    assert first.exit_code == 0, first.stderr
    assert any("waits for pid" in r.getMessage() for r in caplog.records)
    again = cli("build", digits["onnx"], "--backend", "ort", "--work-dir", work)
    assert again.exit_code == 0 and "reused" in again.stdout.lower()


# --- Ctrl-C before anything was written ---


def test_an_early_interrupt_says_so_and_keeps_the_previous_report(cli, report, monkeypatch):
    import alexnet_deploy.workflow as workflow

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(workflow, "_prepare_artifacts", interrupted)  # the job's first step
    before = _snapshot(report / "report")
    result = cli(
        "bench", "--model", report / "m.onnx", "--backend", "ort", "--precision", "fp32",
        "--batch", "2", "--no-direct", "--no-roofline", "--work-dir", report / "work",
        "--out", report / "report",
    )  # fmt: skip
    assert result.exit_code == 130 and "Traceback" not in result.stderr
    assert "Interrupted: no file was changed" in result.stderr
    assert _snapshot(report / "report") == before


# --- bench configuration: refused at parse time, the key named (they used to fail later) ---


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x00\x01\xfe\xff binary", "is not a text file"),
        (None, "is a directory"),
        (b"matrix = 5\n", "matrix = 5: expected a table [matrix]"),
        (b"[matrix]\nbatches = [1.5]\n", "batches = [1.5]: expected a list of whole"),
        (b'[matrix]\nbackends = "ort"\n', "backends = 'ort': expected a list of strings"),
        (b"[rules]\nmax_seconds = nan\n", "max-seconds must be a finite number, got nan"),
        (b"[matrix]\ncolour = 1\n", "unknown key(s) in [matrix]: colour"),
        (b"[matrix\n", "is not valid TOML"),
    ],
)
def test_bad_bench_config(cli, tmp_path, content, message):
    config = tmp_path / "bench.toml"
    if content is None:
        config.mkdir()
    else:
        config.write_bytes(content)
    before = _snapshot(tmp_path)
    result = cli("bench", "--config", config, "--work-dir", tmp_path / "w")
    assert_clean_failure(result, 2, message, before, [tmp_path])
    assert not (tmp_path / "w" / "reports").exists()


@pytest.mark.parametrize("value", ["nan", "inf", "-1"])
def test_max_seconds_that_cannot_end_a_run(cli, tmp_path, value):
    result = cli("bench", f"--max-seconds={value}", "--work-dir", tmp_path / "w")
    assert_clean_failure(result, 2, "max-seconds must be")


# --- gate: broken input exits 2, never 1 (which means "regressed") ---


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is corrupt (not JSON"),
        ('{"schema": "someone-else/report/3", "rows": []}', "has schema 'someone-else/report/3'"),
        (None, "not found"),
    ],
)
def test_broken_gate_baseline_is_not_a_regression(cli, report, tmp_path, content, message):
    baseline = tmp_path / "bench-summary.json"
    if content is not None:
        baseline.write_text(content)
    before = _snapshot(report / "report")
    result = cli("gate", baseline, report / "report")
    assert_clean_failure(result, 2, message, before, [report / "report"])
    assert "gate " not in result.stdout


# --- checkpoints: refused per tensor before the export, nothing written ---


def _checkpoint(path, change):
    import torch

    from alexnet_deploy.models.variants import get_variant

    state = get_variant("torchvision").build().state_dict()
    change(state)
    torch.save(state, path)
    return path


class _RunsCode:
    def __reduce__(self):
        import os

        return (os.system, ("echo this must never run",))


def _nan(state):
    state["classifier.4.weight"][0, :2] = float("nan")


def _ints(state):
    state["features.0.weight"] = state["features.0.weight"].to(dtype=__import__("torch").int32)


def _code(state):
    state["x"] = _RunsCode()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_nan, "non-finite values: classifier.4.weight (2 NaN/Inf values)"),
        (_ints, "features.0.weight is int32 (expected float32)"),
        (_code, "holds pickled Python objects"),
    ],
)
def test_wrong_checkpoint_is_refused_per_tensor(cli, tmp_path, change, message):
    weights = _checkpoint(tmp_path / "w.pth", change)
    before = _snapshot(tmp_path)
    result = cli(
        "export", "--variant", "torchvision", "--weights", weights, "-o", tmp_path / "m.onnx"
    )
    assert_clean_failure(result, 1, message, before, [tmp_path])
    assert not (tmp_path / "m.onnx").exists()


def test_export_over_a_directory_or_an_existing_file(cli, tmp_path):
    existing = tmp_path / "m.onnx"
    existing.write_text("someone's file")
    before = _snapshot(tmp_path)
    assert_clean_failure(cli("export", "-o", tmp_path), 1, "is a directory", before, [tmp_path])
    assert_clean_failure(cli("export", "-o", existing), 1, "already exists", before, [tmp_path])


# --- calibrate: bad options refused before any work ---


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("--target", "cpu-xyz"), 2, "unknown --target 'cpu-xyz'"),
        (("--target", "cpu", "--max-top1-drop", "-1"), 2, "--max-top1-drop must be >= 0"),
        (
            ("--target", "cpu", "--data", "/nonexistent/images"),
            1,
            "calibration data /nonexistent/images not found",
        ),
    ],
)
def test_bad_calibrate_options(cli, digits, tmp_path, args, code, message):
    model = tmp_path / "m.onnx"
    shutil.copy(digits["onnx"], model)
    before = _snapshot(tmp_path)
    result = cli("calibrate", model, *args)
    assert_clean_failure(result, code, message, before, [tmp_path])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


# --- derived artifacts of a previous model: refused with the command that remakes them ---


def test_build_and_package_refuse_the_previous_models_int8(cli, digits_artifacts, tmp_path):
    import onnx
    from onnx import numpy_helper

    root = tmp_path / "m"
    shutil.copytree(digits_artifacts["model"].parent, root)
    model = root / digits_artifacts["model"].name
    proto = onnx.load(str(model))  # 'export --seed 7 --force': same graph, other weights
    init = next(i for i in proto.graph.initializer if len(i.dims) == 4)
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) * 1.5, init.name))
    onnx.save(proto, str(model))
    before = _snapshot(root)
    result = cli(
        "build", model, "--backend", "ort", "--precision", "int8", "--work-dir", tmp_path / "w"
    )
    assert_clean_failure(result, 1, "was made from another model", before, [root])
    result = cli(
        "package", "--triton", tmp_path / "repo", "--model", model,
        "--work-dir", tmp_path / "w", "--no-openvino",
    )  # fmt: skip
    assert_clean_failure(result, 1, "was made from another model", before, [root])
    assert not (tmp_path / "repo").exists()


def test_an_engine_reused_after_its_source_file_moved(digits, tmp_path):
    """Engines are found by their artifact's content: a cached engine built from a file since
    deleted, asked for by an identical file elsewhere, benches that file (it once failed with
    a FileNotFoundError traceback on the old path)."""
    from alexnet_deploy.bench.config import BenchConfig, Matrix, MeasureRules
    from alexnet_deploy.workflow import ModelRequest, bench_model

    rules = MeasureRules(warmup_iterations=2, min_iterations=20, min_seconds=0.1, max_seconds=0.3)
    config = BenchConfig(Matrix(backends=("ort",), precisions=("fp32",), batches=(1,)), rules)
    first = tmp_path / "first" / "m.onnx"
    first.parent.mkdir()
    shutil.copy(digits["onnx"], first)
    data = str(digits["heldout_dir"])
    work = tmp_path / "work"
    bench_model(ModelRequest(model=first, data=data), config, work, tmp_path / "r1", roofline=False)
    shutil.rmtree(first.parent)
    second = tmp_path / "second" / "m.onnx"
    second.parent.mkdir()
    shutil.copy(digits["onnx"], second)
    bench_model(
        ModelRequest(model=second, data=data), config, work, tmp_path / "r2", roofline=False
    )
    rows = json.loads((tmp_path / "r2" / "bench-summary.json").read_text())["rows"]
    assert [r["status"] for r in rows] == ["ok"], rows
    assert rows[0]["engine_reused"] is True
