"""The store after review and trial, through the real CLI, real reports and real back ends: no
password in any report, stored run or message; a mistyped store said, an empty one never
written by a reader; a report imported twice skipped; Ctrl-C during an import says what was
stored; each error one line naming what the user can change."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socketserver
import sqlite3
import threading

import pytest
from sqlalchemy import Engine, event

from alexnet_deploy.errors import AlexnetDeployError
from alexnet_deploy.passwords import masked, masked_argv
from alexnet_deploy.store.db import open_store
from alexnet_deploy.store.from_report import run_from_report
from tests.store.conftest import REPORT_COUNT, REPORTS
from tests.test_faults import _snapshot, assert_clean_failure

SECRET = "Hunter2Secret"
URL = f"postgresql://alex:{SECRET}@db.example:5432/perf"


def _all_bytes(*roots) -> bytes:
    return b"".join(
        p.read_bytes() for root in roots for p in sorted(root.rglob("*")) if p.is_file()
    )


def _runs(cli, store) -> list[dict]:
    listed = cli("store", "list", "--store", store, "--format", "json")
    assert listed.exit_code == 0, listed.stderr
    return json.loads(listed.stdout)


# --- 1, 2: a password is masked everywhere, an unescaped '@' in it refused -------------------


def test_masking_takes_everything_up_to_the_last_at():
    assert masked("postgresql://alex:s3cret@PW@127.0.0.1:5999/perf") == (
        "postgresql://alex:***@127.0.0.1:5999/perf"
    )
    assert masked_argv(
        ["--store=postgres://u:p w@h/db", "--history", "postgresql://u@h/db?password=x&a=b", "a@b"]
    ) == [
        "--store=postgres://u:***@h/db",
        "--history",
        "postgresql://u@h/db?password=***&a=b",
        "a@b",
    ]


def test_a_password_on_the_command_line_is_in_no_report_and_not_stored(digits, tmp_path):
    from alexnet_deploy.bench.config import BenchConfig, Matrix, MeasureRules
    from alexnet_deploy.workflow import ModelRequest, bench_model

    model = tmp_path / "m.onnx"
    shutil.copy(digits["onnx"], model)
    rules = MeasureRules(warmup_iterations=1, min_iterations=10, min_seconds=0.05, max_seconds=0.2)
    config = BenchConfig(Matrix(backends=("ort",), precisions=("fp32",), batches=(2,)), rules)
    argv = ["gate", "--history", f"postgresql://alex:{SECRET}@PW@127.0.0.1:5999/perf", "--run",
            f"--store={URL}"]  # fmt: skip
    out = tmp_path / "report"
    bench_model(
        ModelRequest(model=model, data=str(digits["heldout_dir"])), config, tmp_path / "work",
        out, roofline=False, argv=argv,
    )  # fmt: skip
    assert SECRET.encode() not in _all_bytes(out)  # json, md, csv, parquet, png
    command = json.loads((out / "bench-summary.json").read_text())["command"]
    assert command == (
        "alexnet-deploy gate --history 'postgresql://alex:***@127.0.0.1:5999/perf' --run "
        "'--store=postgresql://alex:***@db.example:5432/perf'"
    )
    store = tmp_path / "s" / "results.sqlite"
    with open_store(store) as opened:
        opened.add_run(*run_from_report(out, kind="bench"))
    with open_store(store, create=False) as opened:
        (run,) = opened.runs()
    assert run.command == command
    assert SECRET.encode() not in _all_bytes(store.parent)  # the database file, read back raw


def test_an_old_reports_password_is_masked_when_stored(cli, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(REPORTS / "main", old)
    summary = old / "bench-summary.json"
    data = json.loads(summary.read_text())
    data["command"] = f"alexnet-deploy bench --store {URL}"  # written before bench masked it
    summary.write_text(json.dumps(data))
    store = tmp_path / "s" / "results.sqlite"
    assert cli("store", "import", old, "--store", store).exit_code == 0
    with open_store(store, create=False) as opened:
        (run,) = opened.runs()
    assert run.command == "alexnet-deploy bench --store postgresql://alex:***@db.example:5432/perf"
    assert SECRET.encode() not in _all_bytes(store.parent)


def test_a_password_with_an_unescaped_at_is_refused_without_echoing_it(cli):
    url = "postgresql://alex:s3cret@PW@127.0.0.1:5999/perf"
    result = cli("store", "list", "--store", url)
    assert_clean_failure(
        result, 2, "store URL postgresql://alex:***@127.0.0.1:5999/perf holds more than one '@': "
        "write a password's '@' as %40, or use PGPASSWORD",
    )  # fmt: skip
    assert "s3cret" not in result.stderr + result.stdout and "PW@" not in result.stderr


# --- 3: a store whose directory cannot be made ------------------------------------------------


def test_a_store_directory_that_cannot_be_made_is_one_line(cli, tmp_path):
    from alexnet_deploy.cli.store import check_store

    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the store's directory would be")
    store = blocker / "sub" / "s.sqlite"
    result = cli("store", "import", REPORTS / "main", "--store", store)
    assert_clean_failure(result, 1, f"cannot make store {store}: its directory {store.parent}")
    assert "Hint: use a path in a writable directory for --store" in result.stderr
    with pytest.raises(AlexnetDeployError, match="is a file, not a directory"):
        check_store(str(store), tmp_path)  # what bench, tune, plan and gate --run ask first
    assert blocker.read_text() == "a file where the store's directory would be"


# --- 4: a report already stored is skipped; Ctrl-C says what was stored ----------------------


def test_a_report_already_stored_is_skipped_and_a_real_failure_still_fails(cli, tmp_path):
    store = tmp_path / "results.sqlite"
    assert cli("store", "import", REPORTS / "main", "--store", store).exit_code == 0
    again = cli("store", "import", REPORTS / "main", REPORTS / "main-amd-zen4", "--store", store)
    assert again.exit_code == 0, again.stderr
    assert f"already stored (skipped): {REPORTS / 'main'}: run 8434c9f5" in again.stdout
    assert "stored run 95cfd6e2" in again.stdout and not again.stderr
    (tmp_path / "empty").mkdir()
    mixed = cli("store", "import", REPORTS / "main", tmp_path / "empty", "--store", store)
    assert_clean_failure(mixed, 1, "1 of 2 report directories were not stored")
    assert "already stored (skipped)" in mixed.stdout
    assert f"Not stored: {REPORTS / 'main'}" not in mixed.stderr  # only the empty one
    assert len(_runs(cli, store)) == 2


def test_an_interrupted_import_says_what_was_stored(cli, tmp_path):
    store = tmp_path / "results.sqlite"
    inserted = []

    def interrupt_the_third_run(conn, cursor, statement, *_args) -> None:
        if statement.startswith("INSERT INTO runs"):
            inserted.append(statement)
            if len(inserted) == 3:  # a real Ctrl-C, as the third report is being stored
                signal.raise_signal(signal.SIGINT)

    event.listen(Engine, "before_cursor_execute", interrupt_the_third_run)
    try:
        result = cli("store", "import", REPORTS, "--store", store)  # main, zen4, tuned, search
    finally:
        event.remove(Engine, "before_cursor_execute", interrupt_the_third_run)
    assert result.exit_code == 130 and "Traceback" not in result.stderr
    assert (
        f"Interrupted: stored 2 of {REPORT_COUNT} (8434c9f5, 95cfd6e2); the rest were not stored"
        in result.stderr
    ), result.stderr
    assert "no file was changed" not in result.stderr
    assert [r["run"] for r in _runs(cli, store)] == ["8434c9f5", "95cfd6e2"]  # whole runs only


# --- 5: a store made is said; nothing made or written where nothing is stored ----------------


def test_a_new_store_is_said_and_none_is_made_without_a_run(cli, tmp_path):
    from alexnet_deploy.cli.store import append_report, check_store

    typo = tmp_path / "defualt"
    made = cli("store", "import", REPORTS / "main", "--store", typo)
    assert made.exit_code == 0 and made.stdout.startswith(f"made a new results store at {typo}\n")
    again = cli("store", "import", REPORTS / "main-amd-zen4", "--store", typo)
    assert again.exit_code == 0 and "made a new" not in again.stdout
    (tmp_path / "no-reports").mkdir()
    for nothing in (tmp_path / "missing", tmp_path / "no-reports"):
        assert cli("store", "import", nothing, "--work-dir", tmp_path / "w").exit_code == 1
    work = tmp_path / "w"
    spec = check_store("default", work)  # bench asks before its work: nothing made yet
    assert not work.exists()
    append_report(spec, REPORTS / "main", "bench")  # the run stored: now the store is made
    assert (work / "results.sqlite").is_file()


def test_a_reader_never_writes_into_an_empty_file(cli, tmp_path):
    empty = tmp_path / "results.sqlite"
    empty.touch()
    for command in (("store", "list"), ("store", "show", "8434c9f5")):
        result = cli(*command, "--store", empty)
        assert_clean_failure(result, 1, f"no results store at {empty} yet")
    assert empty.stat().st_size == 0 and os.listdir(tmp_path) == ["results.sqlite"]


# --- 6: error texts ---------------------------------------------------------------------------


def test_no_password_given_says_where_one_comes_from(cli, pg_server, tmp_path, monkeypatch):
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-pgpass"))
    scheme, rest = pg_server.split("://", 1)
    user, host = rest.split("@", 1)
    password = user.split(":", 1)[1]
    result = cli("store", "list", "--store", f"{scheme}://{user.split(':', 1)[0]}@{host}")
    assert_clean_failure(
        result, 1, "the server asks for a password and none was given: PGPASSWORD, ~/.pgpass "
        "or the URL",
    )  # fmt: skip
    assert password not in result.stderr


class _NotPostgres(socketserver.BaseRequestHandler):
    """Another kind of server on the port: it answers any first bytes with HTTP's 400."""

    def handle(self) -> None:
        self.request.recv(64)
        self.request.sendall(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")


def test_a_server_that_is_not_postgres_is_named(cli):
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _NotPostgres)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        result = cli("store", "list", "--store", f"postgresql://alex:{SECRET}@127.0.0.1:{port}/db")
    finally:
        server.shutdown()
        server.server_close()
    assert_clean_failure(result, 1, f"the server at 127.0.0.1:{port} did not answer as PostgreSQL")
    assert SECRET not in result.stderr


def _damaged_store(tmp_path):
    """A real store with a report in it, the page of its runs table overwritten."""
    store = tmp_path / "results.sqlite"
    with open_store(store) as opened:
        opened.add_run(*run_from_report(REPORTS / "main"))
    with sqlite3.connect(store) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        root = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = 'runs'").fetchone()[0]
    conn.close()
    with open(store, "r+b") as handle:
        handle.seek((root - 1) * page_size)
        handle.write(b"\xff" * page_size)
    return store


def test_a_damaged_store_is_named_with_how_to_recover_it(cli, tmp_path):
    store = _damaged_store(tmp_path)
    before = _snapshot(tmp_path)
    for command in (("store", "list"), ("store", "import", REPORTS / "main-amd-zen4")):
        result = cli(*command, "--store", store)
        assert_clean_failure(
            result, 1, f"{store} is damaged (database disk image is malformed)", before,
            [tmp_path],
        )  # fmt: skip
        assert f"sqlite3 {store} .recover" in result.stderr and "for --store" in result.stderr
    reading = open_store(store, create=False, option="STORE")  # as the dashboard reads it
    with pytest.raises(AlexnetDeployError) as read_by_the_dashboard, reading:
        reading.runs()
    assert read_by_the_dashboard.value.hint.endswith("use that file (or a new name) for STORE")


def test_a_missing_report_directory_is_named_once(cli, tmp_path):
    missing = tmp_path / "nonexistent"
    result = cli("store", "import", missing, "--store", tmp_path / "r.sqlite")
    assert_clean_failure(result, 1, f"Error: {missing} does not exist")
    assert result.stderr.count(str(missing)) == 1 and "already stored" not in result.stderr
    assert os.listdir(tmp_path) == []  # no store made


# --- 7: store show and list -------------------------------------------------------------------


def test_show_says_unstable_and_a_source_overwritten_since(cli, tmp_path):
    report = tmp_path / "report"
    shutil.copytree(REPORTS / "main", report)
    summary = report / "bench-summary.json"
    data = json.loads(summary.read_text())
    data["rows"][0].update(unstable=True, instability="rounds disagree: p50 spread 31%")
    summary.write_text(json.dumps(data))
    store = tmp_path / "results.sqlite"
    imported = cli("store", "import", report, REPORTS / "main-amd-zen4", "--store", store)
    assert imported.exit_code == 0, imported.stderr
    (run, zen4) = _runs(cli, store)
    summary.write_text(json.dumps({**data, "created": "2026-12-01T00:00:00+0000"}))  # a new run
    shown = cli("store", "show", run["run"], "--store", store, "--format", "json")
    rows = json.loads(shown.stdout)
    assert (rows[0]["status"], rows[0]["why"]) == ("unstable", "rounds disagree: p50 spread 31%")
    assert {r["status"] for r in rows[1:]} == {"ok"}
    assert f"from {report} (overwritten since; the store holds its figures)" in shown.stderr
    other = cli("store", "show", zen4["run"], "--store", store, "--format", "json")
    assert f"from {REPORTS / 'main-amd-zen4'}\n" in other.stderr  # still there, as stored


def test_list_with_a_limit_says_of_how_many(cli, tmp_path):
    store = tmp_path / "results.sqlite"
    assert cli("store", "import", REPORTS, "--store", store).exit_code == 0
    limited = cli("store", "list", "--store", store, "--limit", "2")
    assert f"last 2 of {REPORT_COUNT} runs in {store}" in limited.stdout
    whole = cli("store", "list", "--store", store)
    assert f"{REPORT_COUNT} runs in {store}" in whole.stdout and "last" not in whole.stdout


# --- 9: one SQLite header, exported for the gate ----------------------------------------------


def test_the_sqlite_header_is_read_in_one_place(tmp_path):
    from alexnet_deploy.store.connect import is_sqlite_file

    store = tmp_path / "results.sqlite"
    open_store(store).close()
    (tmp_path / "runs.csv").write_text("run,images_per_s\n")
    assert is_sqlite_file(store)
    assert not is_sqlite_file(tmp_path / "runs.csv") and not is_sqlite_file(tmp_path)
