"""Bad input and faults through the real CLI: each case exits with the right code and one
'Error:' line (no traceback), writes no partial file, and leaves every file that was there
before byte for byte as it was."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from alexnet_deploy.fileio import sha256_file


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
        leftovers = [k for k in after if k not in before]
        assert not [k for k in leftovers if ".tmp" in k or "/." in k], leftovers


@pytest.fixture(scope="module")
def report(digits, tmp_path_factory):
    """One small real bench report of the trained test network."""
    from alexnet_deploy.bench.config import BenchConfig, Matrix, MeasureRules
    from alexnet_deploy.bench.pipeline import ModelRequest, run_bench

    root = tmp_path_factory.mktemp("faults")
    model = root / "m.onnx"
    shutil.copy(digits["onnx"], model)
    rules = MeasureRules(warmup_iterations=2, min_iterations=30, min_seconds=0.2, max_seconds=0.5)
    config = BenchConfig(Matrix(backends=("ort",), precisions=("fp32",), batches=(2,)), rules)
    request = ModelRequest(model=model, data=str(digits["heldout_dir"]))
    run_bench(request, config, root / "work", root / "report", roofline=False, argv=["bench"])
    return root


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
