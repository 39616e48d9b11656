"""Measurements travel as typed records (bench/records.py) from the timing loop to the gate, and
become columns only at the report edge (STYLE.md rule 16): no module outside that edge reads a
measurement row by a string key, and a real bench's records come back equal from its report
files through the gate's loader."""

from __future__ import annotations

import ast
import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import alexnet_deploy
from alexnet_deploy.bench.config import BenchConfig, Matrix, MeasureRules
from alexnet_deploy.bench.records import (
    BenchRow,
    EngineInfo,
    Fidelity,
    Roofline,
    ServerResult,
)
from alexnet_deploy.bench.stats import LatencyStats, Stability
from alexnet_deploy.cases import Case
from alexnet_deploy.gate.reports import load_report
from alexnet_deploy.onnx_model import read_artifact

PACKAGE = Path(alexnet_deploy.__file__).parent
RECORDED = Path(__file__).resolve().parents[1] / "docs" / "benchmarks"

# Where rows are columns by design, and why (the whole module)
EDGE_MODULES = {
    "bench/records.py": "to_columns/from_columns: a record becomes a report row and back",
    "bench/report.py": "writes bench-summary.{json,csv,md} and bench-samples.parquet from "
    "the records' columns (polars frames, selected and renamed by column name)",
    "gate/reports.py": "reads bench-summary.json's rows (BenchRow.from_columns) and the Parquet "
    "samples (filtered by the key columns) back",
    "cases.py": "Case.from_row and Case.key: a configuration's key columns",
}
# Functions that are the edge wherever they are (a type's own conversion to and from columns)
EDGE_FUNCTIONS = {"to_columns", "from_columns", "as_columns", "columns", "from_row", "key"}
# Dictionaries that hold a figure of the same name and are not bench rows
NOT_ROWS = {
    ("precision/report.py", "logits"): "compare's logits figures (precision/compare.py)",
    ("store/from_plan.py", "entry"): "a plan.json entry (precision/plan_report.py), not a row",
    ("store/from_plan.py", "fidelity"): "a plan.json entry's fidelity figures",
}

# Key columns and words other dictionaries use too (an engine's options, a model's metadata, a
# report's header): a string-keyed access to them counts only on a row-like name
SHARED_NAMES = {
    "backend", "precision", "quantizer", "batch", "mode", "threads", "streams", "status",
    "reason", "traceback", "engine", "samples", "measured_at",
}  # fmt: skip
ROW_NAMES = {"row", "r", "best", "chosen", "tuned", "peer", "match", "mine", "c"}


def _full_row() -> BenchRow:
    """A row with every group of columns (a failed row's traceback included)."""
    return BenchRow(
        Case("ort", "int8", 1, "server", streams=2),
        traceback="...",
        latency=LatencyStats(10, 1.0, 1.5, 0.1, 3.0, {50.0: 1.5, 99.9: 2.5}, 1.4, 1.6),
        inferences_per_s=1.0,
        images_per_s=1.0,
        wall_seconds=1.0,
        rounds=1,
        round_images_per_s=(1.0,),
        stop_reason="rate search",
        macs_per_image=1,
        engine=EngineInfo("e", True, 0.1, "sha", 1),
        fidelity=Fidelity(1.0, 1.0, 16, "src", "as-executed", 1.0),
        repeat_p50_spread=0.0,
        stability=Stability(),
        server=ServerResult(1.0, True, 50.0),
        roofline=Roofline(1.0, 1.0, 1.0, 1.0, "compute", True),
        measured_at="now",
    )


COLUMNS = set(_full_row().to_columns())
PERCENTILE = re.compile(r"p\d+(\.\d+)?_ms")


def _receiver(node: ast.expr) -> str:
    """The name a subscript or ``.get`` is applied to ('rows' for ``rows[0]["x"]``)."""
    while isinstance(node, ast.Subscript | ast.Call | ast.Attribute):
        node = node.value if not isinstance(node, ast.Call) else node.func
        if isinstance(node, ast.Attribute):
            return node.attr
    return node.id if isinstance(node, ast.Name) else ""


def row_accesses(source: str, module: str = "") -> list[str]:
    """``LINE: CODE`` for each string-keyed access to a measurement row's column in ``source``,
    outside the edge functions."""
    found = []

    def visit(node: ast.AST, edge: bool) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            edge = edge or node.name in EDGE_FUNCTIONS
        key, target = None, None
        if isinstance(node, ast.Subscript):
            key, target = node.slice, node.value
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "get"
            and node.args
        ):
            key, target = node.args[0], node.func.value
        if (
            not edge
            and isinstance(key, ast.Constant)
            and isinstance(key.value, str)
            and (key.value in COLUMNS or PERCENTILE.fullmatch(key.value))
        ):
            name = _receiver(target)
            row_like = name in ROW_NAMES or name.endswith(("row", "rows"))
            if (key.value not in SHARED_NAMES or row_like) and (module, name) not in NOT_ROWS:
                found.append(f"{node.lineno}: {ast.unparse(node)}")
        for child in ast.iter_child_nodes(node):
            visit(child, edge)

    visit(ast.parse(source), False)
    return found


def test_the_detector_sees_string_keyed_row_access():
    """It finds what it is for (a test that cannot fail is a defect) and leaves alone the
    dictionaries that share a word with a row's columns."""
    flagged = (
        'row["p50_ms"]\nr.get("images_per_s")\nbest["backend"]\nrows[0]["status"]\n'
        'match[0]["top1_agreement"]\nx["p99.9_ms"]\nresult.rows[1].get("unstable")\n'
    )
    assert len(row_accesses(flagged)) == 7, row_accesses(flagged)
    fine = (
        'metadata.get("precision")\noptions.get("threads")\nreport["status"]\n'
        'thresholds.values["p50"]\nrow.p50_ms\n'
        'def to_columns(self):\n    return self.cols["p50_ms"]\n'
    )
    assert row_accesses(fine) == []


def test_no_string_keyed_row_access_outside_the_report_edge():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = path.relative_to(PACKAGE).as_posix()
        if module in EDGE_MODULES:
            continue
        offenders += [f"{module}:{hit}" for hit in row_accesses(path.read_text(), module)]
    assert not offenders, "rows are BenchRow records outside the report edge:\n" + "\n".join(
        offenders
    )


def test_the_edge_modules_and_exemptions_exist():
    for module in EDGE_MODULES:
        assert (PACKAGE / module).is_file(), module
    for module, _name in NOT_ROWS:
        assert (PACKAGE / module).is_file(), module


@pytest.mark.parametrize("run", ["main", "main-amd-zen4", "tuned", "tuned/search"])
def test_earlier_reports_read_back_column_for_column(run):
    """The committed reports of earlier versions load as records and give their rows back,
    every column and value (``noisy``, dropped since, aside)."""
    rows = json.loads((RECORDED / run / "bench-summary.json").read_text())["rows"]
    for columns in rows:
        expected = {k: v for k, v in columns.items() if k != "noisy"}
        assert BenchRow.from_columns(columns).to_columns() == expected


def test_every_group_of_columns_round_trips():
    row = _full_row()
    assert BenchRow.from_columns(json.loads(json.dumps(row.to_columns()))) == row
    unstable = replace(row, stability=replace(row.stability, reasons=("a: 1", "round 2: b")))
    assert BenchRow.from_columns(unstable.to_columns()) == unstable
    failed = BenchRow(Case("tensorrt", "fp32", 1, "latency"), "failed", "unavailable")
    assert failed.to_columns() == {**failed.case.key(), "status": "failed", "reason": "unavailable"}
    assert BenchRow.from_columns(failed.to_columns()) == failed


def test_a_real_bench_comes_back_equal_through_the_gates_loader(digits_model, digits, tmp_path):
    """The trained network benched for real (engines and runtimes used directly, two modes, two
    rounds, fidelity emulated and as executed, the roofline), its report files written, and
    gate's loader reading them back: the same records and the same samples."""
    from alexnet_deploy.workflow import ModelRequest, bench_model

    config = BenchConfig(
        Matrix(
            backends=("ort", "ort-direct"),
            precisions=("fp32", "fp16"),
            batches=(2,),
            modes=("latency", "throughput"),
            streams=(2,),
        ),
        MeasureRules(
            warmup_iterations=1,
            warmup_seconds=0.01,
            min_iterations=10,
            min_seconds=0.05,
            max_seconds=0.1,
            repeat=2,
        ),
    )
    request = ModelRequest(model=digits_model, data=str(digits["heldout_dir"]))
    _, result, paths = bench_model(request, config, tmp_path / "work", tmp_path / "out")
    assert len(result.rows) == 8 and all(r.ok for r in result.rows), result.failed
    fp16 = next(r for r in result.rows if r.case.precision == "fp16")
    assert fp16.fidelity.emulated_top1_agreement is not None and fp16.roofline is not None
    assert all(r.rounds == 2 and r.repeat_p50_spread is not None for r in result.rows)
    loaded = load_report(paths["json"])
    assert loaded.rows == {r.case: r for r in result.rows}
    for row in result.rows:
        back, measured = loaded.samples[row.case], result.samples_of(row.case)
        assert len(back) == len(measured) == 2
        assert all(np.array_equal(a, b) for a, b in zip(back, measured, strict=True))
    written = json.loads(paths["json"].read_text())["rows"]
    # every JSON row names the model it measured, beside the record's own columns
    assert {w.pop("model") for w in written} == {read_artifact(digits_model).model_name}
    assert written == [json.loads(json.dumps(r.to_columns())) for r in result.rows]


def test_server_mode_carries_its_rate_search_as_a_record():
    """The server scenario's result travels typed from the timing loop (measure_server) into
    its row and the row's columns (a real rate search over a worker that takes 1 ms a call)."""
    import time

    from alexnet_deploy.bench.measure import measure_server
    from alexnet_deploy.bench.run import CaseRun, _row

    def work(batch):
        time.sleep(0.001)
        return batch

    rules = MeasureRules(warmup_iterations=1, warmup_seconds=0.0, min_seconds=0.05)
    measured = measure_server([work, work], np.zeros((1, 1), np.float32), rules, 50.0, seed=0)
    assert measured.stop_reason == "rate search" and measured.server.bound_ms == 50.0
    assert measured.server.rate == pytest.approx(measured.requests / measured.wall_seconds)
    case = Case("ort", "fp32", 1, "server", streams=2)
    run = CaseRun(case, Path("unused.onnx"), Path("."))
    run.measurements = [measured]
    row = _row(case, run, BenchConfig(rules=rules), None, 0)
    assert row.server == measured.server
    columns = row.to_columns()
    assert columns["server_meets_bound"] is measured.server.meets_bound
    assert BenchRow.from_columns(columns) == row
