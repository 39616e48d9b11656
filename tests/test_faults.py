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
