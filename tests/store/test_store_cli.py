"""The store through the real CLI: `bench --store` on the trained test network (SQLite's default
store and PostgreSQL), `store import` of the committed reports, `store list` and `show`, and
what bad input gets: one `Error:` line, no traceback, no password, nothing changed."""

from __future__ import annotations

import json
import shutil
import sqlite3

import pytest

from alexnet_deploy.errors import AlexnetDeployError
from tests.store.conftest import REPORT_COUNT, REPORTS
from tests.test_faults import _snapshot, assert_clean_failure


def _runs(cli, *store_args) -> list[dict]:
    result = cli("store", "list", *store_args, "--format", "json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_import_the_committed_reports_then_list_and_show(cli, tmp_path):
    store = tmp_path / "results.sqlite"
    result = cli("store", "import", REPORTS / "main", REPORTS / "main-amd-zen4", "--store", store)
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count(f"in {store}: ") == 2
    runs = _runs(cli, "--store", store)
    assert [(r["kind"], r["cpu class"], r["configurations"], r["failed"]) for r in runs] == [
        ("import", "vnni", 26, 0),
        ("import", "vnni", 26, 0),
    ]
    assert [r["cpu"] for r in runs] == ["Intel(R) Xeon(R) Processor", "AMD EPYC"]  # oldest first
    assert runs[1]["commit"] == "48d3a4f9f6f1" and runs[0]["commit"] == "1210e4344b56-dirty"
    shown = cli("store", "show", runs[1]["run"], "--store", store, "--format", "json")
    assert shown.exit_code == 0, shown.stderr
    rows = json.loads(shown.stdout)
    assert len(rows) == 26 and all(r["samples"] and r["p99 95% CI"] for r in rows)
    assert {r["configuration"] for r in rows} >= {
        "ort int8 b1 latency",
        "openvino fp32 b32 latency",
    }


def test_a_report_imported_twice_is_skipped_and_the_others_stored(cli, tmp_path):
    store = tmp_path / "results.sqlite"
    assert cli("store", "import", REPORTS / "main", "--store", store).exit_code == 0
    before = _snapshot(REPORTS)
    result = cli("store", "import", REPORTS, "--store", store)  # walks: main, zen4, tuned, search
    assert result.exit_code == 0, result.stderr
    assert f"already stored (skipped): {REPORTS / 'main'}: run " in result.stdout
    assert result.stdout.count("stored run ") == REPORT_COUNT - 1 and _snapshot(REPORTS) == before
    assert len(_runs(cli, "--store", store)) == REPORT_COUNT


def test_a_corrupt_report_is_named_and_the_others_stored(cli, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(REPORTS / "main", broken)
    samples = broken / "bench-samples.parquet"
    samples.write_bytes(samples.read_bytes()[:1000])
    store = tmp_path / "results.sqlite"
    result = cli("store", "import", broken, REPORTS / "main-amd-zen4", "--store", store)
    assert_clean_failure(result, 1, "1 of 2 report directories were not stored")
    assert f"Not stored: {broken}: report {samples} is corrupt" in result.stderr
    assert [r["cpu"] for r in _runs(cli, "--store", store)] == ["AMD EPYC"]


def test_a_directory_without_a_report_is_named(cli, tmp_path):
    (tmp_path / "empty").mkdir()
    result = cli("store", "import", tmp_path / "empty", "--store", tmp_path / "r.sqlite")
    assert_clean_failure(result, 1, "1 of 1 report directories were not stored")
    assert f"{tmp_path / 'empty'} holds no bench-summary.json" in result.stderr


BENCH = (
    "--backend", "ort", "--precision", "fp32", "--batch", "2", "--no-direct", "--no-roofline",
    "--min-seconds", "0.1", "--max-seconds", "0.3", "--warmup-iterations", "1",
)  # fmt: skip


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_bench_store_appends_the_run(cli, digits, tmp_path, backend, request):
    work, out = tmp_path / "work", tmp_path / "report"
    model = tmp_path / "m.onnx"
    shutil.copy(digits["onnx"], model)
    spec = "default" if backend == "sqlite" else request.getfixturevalue("pg_url")
    result = cli(
        "bench", "--model", model, "--data", digits["heldout_dir"], *BENCH,
        "--work-dir", work, "--out", out, "--store", spec,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    where = work / "results.sqlite" if backend == "sqlite" else "postgresql://alexnet:***@"
    assert "stored run " in result.stdout and str(where) in result.stdout
    store_args = ("--work-dir", work) if backend == "sqlite" else ("--store", spec)
    (run,) = _runs(cli, *store_args)
    assert (run["kind"], run["configurations"], run["failed"]) == ("bench", 1, 0)
    assert run["model"] == "alexnet-digits-tiny"
    shown = cli("store", "show", run["run"], *store_args, "--format", "json")
    (row,) = json.loads(shown.stdout)
    report = json.loads((out / "bench-summary.json").read_text())
    assert row["configuration"] == "ort fp32 b2 latency"
    assert row["samples"] == report["rows"][0]["samples"]  # every raw sample, copied
    again = cli("store", "import", out, *store_args)  # the same report: not counted twice
    assert again.exit_code == 0 and "already stored (skipped)" in again.stdout
    assert len(_runs(cli, *store_args)) == 1


def test_a_store_failure_after_a_good_run_keeps_the_report(tmp_path, monkeypatch):
    from alexnet_deploy import constants as C
    from alexnet_deploy.cli.store import append_report
    from alexnet_deploy.store.db import open_store
    from alexnet_deploy.store.from_report import run_from_report

    report = tmp_path / "report"
    shutil.copytree(REPORTS / "main", report)
    store = tmp_path / "results.sqlite"
    open_store(store).close()
    monkeypatch.setattr(C, "STORE_BUSY_TIMEOUT_S", 0.2)
    before = _snapshot(report)
    holder = sqlite3.connect(store, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the store past the busy timeout
    try:
        with pytest.raises(AlexnetDeployError) as failed:
            append_report(str(store), report, "bench")
        assert failed.value.exit_code == 1
        with pytest.raises(AlexnetDeployError) as failed_in_gate:
            append_report(str(store), report, "gate", exit_code=2)
        assert failed_in_gate.value.exit_code == 2  # never the gate's "regressed"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    uuid = run_from_report(report)[0].uuid
    assert failed.value.message == (
        f"store {store} failed while storing run {uuid[:8]}: busy: "
        f"another run held its write lock for over 0.2 s; nothing of it was stored (the report "
        f"in {report} was kept)"
    )
    assert _snapshot(report) == before
    with open_store(store) as opened:
        assert opened.runs() == []


def test_a_corrupt_store_is_one_line_and_left_as_it_is(cli, digits, tmp_path):
    store = tmp_path / "results.sqlite"
    store.write_bytes(b"\x00garbage, not a database\n" * 100)
    before = _snapshot(tmp_path)
    result = cli("store", "list", "--store", store)
    assert_clean_failure(
        result, 1, "is not a results store (file is not a database)", before, [tmp_path]
    )
    # bench refuses it before any work: no report, the file as it was
    bench = cli(
        "bench", "--model", digits["onnx"], *BENCH, "--work-dir", tmp_path / "w",
        "--out", tmp_path / "out", "--store", store,
    )  # fmt: skip
    assert_clean_failure(bench, 1, "is not a results store", before, [tmp_path])
    assert not (tmp_path / "out").exists()


def test_a_missing_store_is_not_made_by_list(cli, tmp_path):
    result = cli("store", "list", "--work-dir", tmp_path)
    assert_clean_failure(result, 1, f"no results store at {tmp_path / 'results.sqlite'}")
    assert not (tmp_path / "results.sqlite").exists()


def _password(url: str) -> str:
    return url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]


@pytest.mark.parametrize(
    "change, code, said",
    [
        (lambda u: u.replace(f":{_password(u)}@", ":Wr0ngSecret@"), 1,
         "password authentication failed"),
        (lambda u: u.replace("@127.0.0.1:", "@127.0.0.1:1").rsplit(":", 1)[0] + ":1/x", 1,
         "connection refused"),
        (lambda u: u.split("?")[0].rsplit("/", 1)[0] + "/no_such_db", 1,
         "the database does not exist"),
        (lambda u: "mysql://alexnet:Wr0ngSecret@127.0.0.1/db", 2, "scheme 'mysql' is not supported"),
        (lambda u: "postgresql://alexnet:Wr0ngSecret@127.0.0.1:notaport/db", 2, "is malformed"),
    ],
    ids=["password", "port", "database", "scheme", "malformed"],
)  # fmt: skip
def test_a_wrong_url_is_one_line_without_the_password(cli, pg_server, change, code, said):
    url = change(pg_server)
    for command in (
        ("store", "list", "--store", url),
        ("store", "import", REPORTS / "main", "--store", url),
    ):
        result = cli(*command)
        assert_clean_failure(result, code, said)
        for secret in {_password(url), _password(pg_server)}:
            assert secret not in result.stdout + result.stderr
    if code == 1:
        assert ":***@" in result.stderr


def test_store_is_refused_where_nothing_is_stored(cli, tmp_path):
    e2e = cli("bench", "--end-to-end", "--store", "default", "--work-dir", tmp_path)
    assert_clean_failure(e2e, 2, "bench --end-to-end writes another kind")
    gate = cli(
        "gate", REPORTS / "main", REPORTS / "main", "--store", "default", "--work-dir", tmp_path
    )
    assert_clean_failure(gate, 2, "gate --store keeps the run that --run benches")
    assert not (tmp_path / "results.sqlite").exists()


def test_gate_run_store_appends_the_rerun(cli, report, tmp_path):
    store = tmp_path / "results.sqlite"
    result = cli(
        "gate", report / "report", "--run", "--threshold", "0.9", "--store", store,
        "--work-dir", report / "work",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "stored run " in result.stdout and f"in {store}" in result.stdout
    (run,) = _runs(cli, "--store", store)
    assert (run["kind"], run["configurations"], run["model"]) == ("gate", 1, "alexnet-digits-tiny")


def test_plan_store_appends_its_timings(cli, digits_model, digits, tmp_path):
    store = tmp_path / "results.sqlite"
    result = cli(
        "plan", digits_model, "--data", digits["train_dir"], "--eval-data", digits["heldout_dir"],
        "--calib-size", "64", "--eval-size", "100", "--backend", "ort", "--max-candidates", "2",
        "--repeat", "1", "--batch", "1", "--min-seconds", "0.05", "--max-seconds", "0.1",
        "-o", tmp_path / "plan", "--work-dir", tmp_path / "work", "--store", store,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    (run,) = _runs(cli, "--store", store)
    assert run["kind"] == "plan" and run["configurations"] >= 2
    shown = json.loads(
        cli("store", "show", run["run"], "--store", store, "--format", "json").stdout
    )
    labels = {r["configuration"] for r in shown}
    assert "ort plan b1 latency: all-FP32" in labels
    plan = json.loads((tmp_path / "plan" / "plan.json").read_text())
    fp32 = next(r for r in plan["references"] if r["plan"] == "all-FP32")
    stored = next(r for r in shown if r["configuration"] == "ort plan b1 latency: all-FP32")
    assert stored["img/s"] == round(fp32["images_per_s"]["ort plan b1 latency"], 1)
