"""The Python API (alexnet_deploy/api.py): the README's example, run as written on the trained
test network; one lock per run; typed records back; user errors as AlexnetDeployError."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from alexnet_deploy import api
from alexnet_deploy.bench.config import BenchConfig, Matrix, MeasureRules
from alexnet_deploy.bench.pipeline import BenchOptions, BenchRun
from alexnet_deploy.bench.records import BenchRow
from alexnet_deploy.errors import UsageError
from alexnet_deploy.gate.compare import GateResult
from alexnet_deploy.predict import Classified, Prediction

README = Path(__file__).resolve().parents[1] / "README.md"
FAST = MeasureRules(min_seconds=0.05, max_seconds=0.1)


def readme_example() -> str:
    """The first Python block of the README's "Python API" section."""
    section = README.read_text().split("## Python API", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture
def workspace(digits, digits_model, tmp_path, monkeypatch):
    """What the example names, in the current directory: model.onnx (the trained network),
    images (its held-out digits) and baseline (a report of an earlier run, same matrix)."""
    monkeypatch.chdir(tmp_path)
    shutil.copy(digits_model, "model.onnx")
    Path("images").symlink_to(digits["heldout_dir"])
    config = BenchConfig(Matrix(backends=("ort",), precisions=("fp32", "int8"), batches=(1,)), FAST)
    api.bench("model.onnx", config, data="images", work_dir="work", out="baseline")
    return tmp_path


def test_the_readme_example_runs_on_the_trained_network(workspace, capsys):
    names: dict = {}
    exec(compile(readme_example(), str(README), "exec"), names)
    run, result = names["run"], names["result"]
    assert isinstance(run, BenchRun) and run.status == "complete"
    assert all(isinstance(row, BenchRow) and row.ok for row in run.rows)
    measured = {(r.case.backend, r.case.precision) for r in run.rows}
    assert {("ort", "fp32"), ("ort", "int8")} <= measured
    fp32 = next(r for r in run.rows if (r.case.backend, r.case.precision) == ("ort", "fp32"))
    assert fp32.top1_agreement == 1.0  # FP32 against its own reference: every image agrees
    assert run.report["model"]["path"] == "model.onnx" and run.paths["json"].is_file()
    # the INT8 files the baseline's run calibrated beside the model were reused, not redone
    assert run.report["stages"]["int8"] == "cached"
    assert isinstance(result, GateResult) and bool(result) == result.passed
    assert result.exit_code in (0, 1)  # two separate short runs: a pass or a flagged change
    assert {v.config for v in result.verdicts} == {r.label for r in run.rows}
    printed = capsys.readouterr().out
    assert f"{fp32.label}: " in printed and result.summary() in printed


def test_a_bench_run_takes_the_work_directory_lock_once(digits, digits_model, tmp_path, caplog):
    """The job takes the work directory's lock at its top; the artifacts and the bench run
    under it; engines/build.py (also the build command's) only nests within that hold."""
    work = tmp_path / "work"
    config = BenchConfig(Matrix(backends=("ort",), precisions=("fp32",), batches=(1, 2)), FAST)
    with caplog.at_level(logging.DEBUG, logger="alexnet_deploy.locking"):
        run = api.bench(
            digits_model, config, data=str(digits["heldout_dir"]), work_dir=work,
            out=tmp_path / "out", options=BenchOptions(direct=False, roofline=False),
        )  # fmt: skip
    assert run.status == "complete" and len(run.rows) == 2
    on_work = [r for r in caplog.records if r.args and Path(r.args[1]) == work]
    taken = [r.args[0] for r in on_work if "takes the lock" in r.msg]
    nested = [r.args[0] for r in on_work if "holds the lock" in r.msg]
    assert taken == ["bench"]
    assert nested and set(nested) == {"build"}  # one per engine built or reused


def test_a_stage_called_without_its_jobs_lock_is_a_bug(digits_model, tmp_path):
    from alexnet_deploy.bench.pipeline import run_bench

    with pytest.raises(RuntimeError, match="without its lock"):
        run_bench(digits_model, BenchConfig(), tmp_path / "work", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_predict_returns_typed_predictions_and_names_an_unreadable_file(
    digits, digits_model, tmp_path
):
    images = sorted(Path(digits["heldout_dir"]).rglob("*.png"))[:3]
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    classified = api.predict([*images, broken], digits_model, top=2, work_dir=tmp_path / "w")
    assert isinstance(classified, Classified) and classified.engine.backend == "ort"
    assert all(isinstance(p, Prediction) for p in classified.predictions)
    read = [p for p in classified.predictions if p.error is None]
    assert [p.path for p in read] == images and all(len(p.top) == 2 for p in read)
    assert [p.path for p in classified.predictions if p.error] == [broken]


def test_predict_refuses_a_model_that_does_not_declare_its_preprocessing(tmp_path):
    from tests.foreign_models import export, png_folder

    model = export(tmp_path / "foreign.onnx")
    with pytest.raises(UsageError, match="does not say how its images are preprocessed"):
        api.predict([png_folder(tmp_path / "png", 2)], model, work_dir=tmp_path / "w")
    assert not list((tmp_path / "w").rglob("*.json"))  # refused before any engine was built


def test_the_api_is_imported_on_first_use():
    code = (
        "import sys, alexnet_deploy; before = 'alexnet_deploy.api' in sys.modules; "
        "heavy = [m for m in ('torch', 'onnx', 'onnxruntime') if m in sys.modules]; "
        "bench = alexnet_deploy.api.bench; from alexnet_deploy import api; "
        "print(before, heavy, bench is api.bench, sorted(api.__all__))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split("[", 1)[0].strip() == "False"
    assert "[] True" in out.stdout
    for name in ("bench", "build", "calibrate", "compare", "export", "gate", "plan", "predict"):
        assert f"'{name}'" in out.stdout
