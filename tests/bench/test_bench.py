"""bench end to end on the trained test network: real engines, real timings (short), real
reports; partial failure and interruption."""

from __future__ import annotations

import json
import re
import shutil

import polars as pl
import pytest

from alexnet_deploy.bench.config import BenchConfig, Matrix, MeasureRules
from alexnet_deploy.bench.pipeline import fidelity_probe
from alexnet_deploy.bench.plot import pareto_front
from alexnet_deploy.bench.report import SCHEMA
from alexnet_deploy.bench.run import run_matrix
from alexnet_deploy.workflow import ModelRequest, bench_model

FAST = MeasureRules(
    warmup_iterations=2, warmup_seconds=0.05, min_iterations=10, min_seconds=0.1, max_seconds=0.4
)


@pytest.fixture(scope="module")
def model(digits_model):
    return digits_model


def test_cli_bench_writes_every_report(model, digits, cli, tmp_path):
    result = cli(
        "bench",
        "--model",
        model,
        "--data",
        digits["heldout_dir"],
        "--backend",
        "ort",
        "--backend",
        "torch",
        "--batch",
        "1,4",
        "--mode",
        "latency",
        "--mode",
        "throughput",
        "--streams",
        "2",
        "--min-seconds",
        "0.1",
        "--max-seconds",
        "0.4",
        "--repeat",
        "2",
        "--work-dir",
        tmp_path / "work",
        "--out",
        tmp_path / "reports",
        "--no-roofline",
    )
    assert result.exit_code == 0, result.stderr
    reports = tmp_path / "reports"
    report = json.loads((reports / "bench-summary.json").read_text())
    assert report["schema"] == SCHEMA and report["status"] == "complete"
    assert report["stages"] == {"export": "given", "fp16": "built", "int8": "built"}
    assert {"cpu", "logical_cores", "runtimes", "git_commit", "os", "python"} <= report[
        "environment"
    ].keys()
    rows = report["rows"]
    # ort x 3 precisions + torch fp32, x 2 batches x 2 modes
    assert len(rows) == 16 and all(r["status"] == "ok" for r in rows)
    for row in rows:
        assert row["p50_ci_low_ms"] <= row["p50_ms"] <= row["p50_ci_high_ms"]
        assert row["images_per_s"] == pytest.approx(row["inferences_per_s"] * row["batch"])
        assert 0 <= row["top1_agreement"] <= 1 and row["fidelity_samples"] == 16
        assert "repeat_p50_spread" in row
    fp32 = [r for r in rows if r["precision"] == "fp32"]
    assert all(r["top1_agreement"] == 1.0 for r in fp32)
    samples = pl.read_parquet(reports / "bench-samples.parquet")
    assert set(samples["repeat"].unique()) == {0, 1}
    assert len(samples) == sum(r["samples"] for r in rows)
    csv = pl.read_csv(reports / "bench-summary.csv")
    assert csv.height == 16 and "p99_ms" in csv.columns
    md = (reports / "bench-summary.md").read_text()
    assert md.startswith("# alexnet-deploy bench") and "| images/s |" in md.replace("  ", "")
    # for people: the headline before the table, numbers rounded, the p50 with its interval,
    # no INT8 route on rows that have none
    assert md.index("## Headline") < md.index("## Every configuration")
    table = [line for line in md.splitlines() if line.startswith("| ") and " b1 " in line]
    assert table and all(re.search(r"\| [\d.]+ \([\d.]+-[\d.]+\) +\|", line) for line in table)
    assert not re.search(r"\d\.\d{5,}", md.split("## Every configuration")[1])
    fp32_line = next(line for line in table if " fp32 " in line)
    assert "qdq" not in fp32_line
    assert (reports / "bench-report.png").read_bytes()[:4] == b"\x89PNG"
    # the second run reuses every artifact and engine
    again = cli(
        "bench",
        "--model",
        model,
        "--data",
        digits["heldout_dir"],
        "--backend",
        "ort",
        "--precision",
        "int8",
        "--batch",
        "1",
        "--streams",
        "2",
        "--min-seconds",
        "0.1",
        "--max-seconds",
        "0.2",
        "--work-dir",
        tmp_path / "work",
        "--out",
        tmp_path / "reports2",
        "--no-roofline",
    )
    assert again.exit_code == 0, again.stderr
    report = json.loads((tmp_path / "reports2" / "bench-summary.json").read_text())
    assert report["stages"] == {"export": "given", "fp16": "not needed", "int8": "cached"}
    assert report["rows"][0]["engine_reused"] is True


def test_backend_failing_mid_matrix_marks_its_row_and_continues(model, digits, tmp_path):
    """The FP16 artifact is deleted after preparation: its rows fail with the reason, the others
    run; the status says partial."""
    bench_model = tmp_path / "m.onnx"
    shutil.copy(model, bench_model)
    probe = fidelity_probe(bench_model, str(digits["heldout_dir"]), 0)
    config = BenchConfig(
        Matrix(backends=("ort",), precisions=("fp32", "fp16", "int8"), batches=(2,)), FAST
    )
    # int8 exists, fp16 does not: a real failure of the real build path
    from alexnet_deploy.calib.pipeline import calibrate
    from alexnet_deploy.calib.stage import DataRequest

    calibrate(
        bench_model,
        DataRequest(
            data=str(digits["train_dir"]),
            calib_size=32,
            eval_data=str(digits["heldout_dir"]),
            eval_size=32,
        ),
        targets=("cpu",),
    )
    result = run_matrix(bench_model, config, tmp_path / "work", probe, None, direct=False)
    status = {r.case.precision: r.status for r in result.rows}
    assert status == {"fp32": "ok", "fp16": "failed", "int8": "ok"}
    failed = next(r for r in result.rows if not r.ok)
    assert "no fp16 artifact" in failed.reason and failed.latency is None


def test_cli_exit_code_says_partial(model, digits, cli, tmp_path):
    """TensorRT is unavailable on a machine without a GPU: asked for explicitly, its row fails
    with the reason, the ort row runs, and the exit code (3) says partial."""
    from alexnet_deploy.engines.registry import get_backend

    if get_backend("tensorrt").capability().available:
        pytest.skip("TensorRT is available here")
    result = cli(
        "bench",
        "--model",
        model,
        "--data",
        digits["heldout_dir"],
        "--backend",
        "ort",
        "--backend",
        "tensorrt",
        "--precision",
        "fp32",
        "--batch",
        "1",
        "--min-seconds",
        "0.1",
        "--max-seconds",
        "0.2",
        "--work-dir",
        tmp_path / "work",
        "--out",
        tmp_path / "r",
        "--no-roofline",
    )
    assert result.exit_code == 3
    assert "Failed: tensorrt fp32 b1 latency: backend 'tensorrt' is unavailable" in result.stderr
    report = json.loads((tmp_path / "r" / "bench-summary.json").read_text())
    assert report["status"] == "partial"
    assert [r["status"] for r in report["rows"]] == ["ok", "failed"]


def test_interrupt_keeps_finished_rows(model, digits, tmp_path):
    probe = fidelity_probe(model, str(digits["heldout_dir"]), 0)
    config = BenchConfig(Matrix(backends=("ort",), precisions=("fp32",), batches=(1, 2, 4)), FAST)
    seen = []

    def interrupt_after_first(row):
        seen.append(row)
        if len(seen) == 1:
            raise KeyboardInterrupt  # what SIGINT raises in the main thread

    result = run_matrix(
        model, config, tmp_path / "work", probe, None, direct=False, on_row=interrupt_after_first
    )
    assert result.interrupted and len(result.rows) == 1 and result.rows[0].ok


def test_reports_dir_not_writable(model, digits, cli, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = cli(
        "bench", "--model", model, "--out", blocker / "reports", "--work-dir", tmp_path / "w"
    )
    assert result.exit_code == 1 and "is a file, not a directory" in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--backend", "nope"], "nope"),
        (["--precision", "int4"], "int4"),
        (["--batch", "0,1"], "--batch must be at least 1, got 0"),
        (["--batch", "4,4"], "--batch 4 given twice"),
        (["--min-seconds", "0"], "--min-seconds must be a finite number above 0"),
        (["--max-seconds", "-1"], "--max-seconds must be a finite number above 0"),
    ],
)
def test_cli_bad_input(cli, args, message, tmp_path):
    result = cli("bench", *args, "--work-dir", tmp_path)
    assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_pareto_front():
    points = [(100, 10), (200, 20), (150, 30), (50, 5), (200, 25)]
    assert sorted(pareto_front(points)) == [0, 1, 3]


def test_run_bench_interrupt_writes_partial_report(model, digits, tmp_path, monkeypatch):
    """Ctrl-C through the whole pipeline: the report says interrupted, every file is complete."""
    import alexnet_deploy.bench.pipeline as pipeline

    original = pipeline.run_matrix

    def run_then_interrupt(*args, **kwargs):
        calls = []

        def on_row(row):
            calls.append(row)
            raise KeyboardInterrupt

        return original(*args, **{**kwargs, "on_row": on_row})

    monkeypatch.setattr(pipeline, "run_matrix", run_then_interrupt)
    config = BenchConfig(Matrix(backends=("ort",), precisions=("fp32",), batches=(1, 2)), FAST)
    report, result, paths = bench_model(
        ModelRequest(model=model, data=str(digits["heldout_dir"])),
        config,
        tmp_path / "work",
        tmp_path / "out",
        roofline=False,
        argv=["bench"],
    )
    assert report["status"] == "interrupted" and len(result.rows) == 1
    assert json.loads(paths["json"].read_text())["status"] == "interrupted"
    assert pl.read_parquet(paths["parquet"]).height == result.rows[0].latency.count


def _report_files(out):
    from alexnet_deploy.fileio import sha256_file

    return {p.name: sha256_file(p) for p in sorted(out.iterdir())}


def test_interrupt_before_any_row_keeps_the_previous_report(
    model, digits, cli, tmp_path, monkeypatch
):
    """Ctrl-C during the first configuration: the previous report in --out is untouched (it
    used to be replaced by an empty 'interrupted' one), and the CLI says so."""
    import alexnet_deploy.bench.run as run

    out = tmp_path / "out"
    args = ["bench", "--model", model, "--data", digits["heldout_dir"], "--backend", "ort"]
    args += ["--precision", "fp32", "--batch", "1", "--mode", "latency", "--no-direct"]
    args += ["--no-roofline", "--min-seconds", "0.1", "--max-seconds", "0.3"]
    args += ["--work-dir", tmp_path / "w", "--out", out]
    assert cli(*args).exit_code == 0
    before = _report_files(out)
    assert {"bench-summary.json", "bench-samples.parquet"} <= set(before)

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(run, "_measure", interrupted)
    result = cli(*args)
    assert (
        result.exit_code == 130
        and "previous report" in result.stderr
        and "untouched" in result.stderr
    )
    assert _report_files(out) == before


def test_a_new_report_replaces_every_file_of_the_old(model, digits, tmp_path):
    """No file of an older run survives beside a new report (a stale plot, say)."""
    from alexnet_deploy.outputs import mark_directory

    out = tmp_path / "out"
    out.mkdir()
    mark_directory(out, "bench")  # an older run's report directory
    (out / "bench-report.png").write_bytes(b"an older run's plot")
    (out / "notes.txt").write_text("the user's own file")
    config = BenchConfig(Matrix(backends=("ort",), precisions=("fp32",), batches=(1,)), FAST)
    request = ModelRequest(model=model, data=str(digits["heldout_dir"]))
    _, _, paths = bench_model(request, config, tmp_path / "w", out, roofline=False, argv=["bench"])
    png = out / "bench-report.png"
    assert ("png" in paths) == png.exists()
    assert not png.exists() or png.read_bytes() != b"an older run's plot"
    assert (out / "notes.txt").read_text() == "the user's own file"
    assert not list(tmp_path.glob(".out.*"))  # no staging directory left behind


def test_inputs_times_real_images(model, digits, cli, tmp_path):
    """`--inputs DIR`: inference timed on real preprocessed images, said in the report."""
    out = tmp_path / "out"
    result = cli(
        "bench", "--model", model, "--data", digits["heldout_dir"], "--inputs",
        digits["heldout_dir"] / "5", "--backend", "ort", "--precision", "fp32", "--batch", "4",
        "--no-direct", "--no-roofline", "--min-seconds", "0.1", "--max-seconds", "0.2",
        "--work-dir", tmp_path / "w", "--out", out,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    report = json.loads((out / "bench-summary.json").read_text())
    assert re.match(r"\d+ real images from .*heldout/5, repeated", report["timed_inputs"])
    assert "timed inputs: " in (out / "bench-summary.md").read_text()
    missing = cli(
        "bench", "--model", model, "--inputs", tmp_path / "nope", "--backend", "ort",
        "--precision", "fp32", "--batch", "1", "--no-direct", "--no-roofline",
        "--work-dir", tmp_path / "w", "--out", tmp_path / "out2",
    )  # fmt: skip
    assert missing.exit_code == 1 and "not found" in missing.stderr
    assert not (tmp_path / "out2").exists()
