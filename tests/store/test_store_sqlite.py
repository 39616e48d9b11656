"""The embedded store (a real SQLite file): a real report stored and read back whole, two writer
processes at once, a newer schema refused, an older one migrated in one transaction, and files
that are not stores refused without a byte changed."""

from __future__ import annotations

import dataclasses
import multiprocessing
import sqlite3

import pytest
from sqlalchemy import inspect, text

from alexnet_deploy.errors import AlexnetDeployError
from alexnet_deploy.fileio import sha256_file
from alexnet_deploy.store import schema
from alexnet_deploy.store.db import open_store
from alexnet_deploy.store.records import STORE_SCHEMA_VERSION, StoredVerdict
from tests.store.conftest import REPORTS


def _as_given(results):
    return [dataclasses.replace(r, run=None) for r in results]


def test_a_real_report_round_trips_whole(sqlite_path, main_report):
    run, results = main_report
    assert len(results) == 26 and all(len(r.samples_ms) == r.record["samples"] for r in results)
    with open_store(sqlite_path) as store:
        run_id = store.add_run(run, results)
        assert store.runs() == [dataclasses.replace(run, run_id=run_id)]
        back = store.results(run.uuid)
    assert _as_given(back) == results  # every field: records, intervals, samples
    assert all(r.run.uuid == run.uuid for r in back)
    first = results[0]
    assert first.p50_ci_ms[0] <= first.p50_ms <= first.p50_ci_ms[1]
    assert first.p99_ci_ms[0] <= first.p99_ms <= first.p99_ci_ms[1]


def test_series_configurations_and_verdicts(sqlite_path, main_report):
    from alexnet_deploy.store.from_report import run_from_report

    run, results = main_report
    zen4, zen4_results = run_from_report(REPORTS / "main-amd-zen4", branch="main")
    with open_store(sqlite_path) as store:
        store.add_run(zen4, zen4_results)  # created a day after main: stored first on purpose
        store.add_run(run, results)
        label = results[0].label
        series = store.series(label, "vnni", run.model_sha256)
        assert [r.run.uuid for r in series] == [run.uuid, zen4.uuid]  # oldest first
        assert [r.run.uuid for r in store.series(label, "vnni", run.model_sha256, limit=1)] == [
            zen4.uuid
        ]
        assert store.series(label, "avx2", run.model_sha256) == []  # never across classes
        assert [r.uuid for r in store.runs(limit=1)] == [zen4.uuid]
        configurations = store.configurations()
        for cpu in ("Intel(R) Xeon(R) Processor", "AMD EPYC"):  # one series per machine class
            assert (label, "vnni", cpu, run.model_sha256, "alexnet-torchvision") in configurations
        assert configurations == sorted(configurations)
        verdict = StoredVerdict(zen4.uuid, label, "regression", "history-changepoint", "48d3a4f9")
        store.add_verdicts([verdict])
        store.add_verdicts([dataclasses.replace(verdict, verdict="pass")])  # replaces it
        assert store.verdicts(label, "vnni", run.model_sha256) == [
            dataclasses.replace(verdict, verdict="pass")
        ]
        with pytest.raises(AlexnetDeployError, match="no run 00000000"):
            store.add_verdicts([dataclasses.replace(verdict, run_uuid="0" * 32)])


def test_the_same_run_is_not_stored_twice(sqlite_path, main_report):
    run, results = main_report
    with open_store(sqlite_path) as store:
        store.add_run(run, results)
        with pytest.raises(AlexnetDeployError, match="already in store"):
            store.add_run(run, results[:1])
        assert len(store.runs()) == 1 and len(store.results(run.uuid)) == 26


def _writer(path: str, prefix: str, runs: int, start) -> None:
    from alexnet_deploy.store.from_report import run_from_report
    from tests.store.conftest import REPORTS  # a spawned process imports afresh

    run, results = run_from_report(REPORTS / "main")
    start.wait()
    with open_store(path) as store:
        for i in range(runs):
            store.add_run(dataclasses.replace(run, uuid=f"{prefix}{i:031d}"), results)


def two_writers(spec: str, runs: int = 4) -> None:
    """Two processes each store ``runs`` runs of 26 configurations at the same moment."""
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    writers = [context.Process(target=_writer, args=(spec, prefix, runs, start)) for prefix in "ab"]
    for process in writers:
        process.start()
    for process in writers:
        process.join(120)
    assert [p.exitcode for p in writers] == [0, 0]
    with open_store(spec) as store:
        stored = store.runs()
        assert sorted(r.uuid[0] for r in stored) == ["a"] * runs + ["b"] * runs
        assert all(len(store.results(r.uuid)) == 26 for r in stored)


def test_two_writer_processes_at_once_both_store(sqlite_path):
    open_store(sqlite_path).close()  # made first: the writers race on the rows, not the file
    two_writers(str(sqlite_path))


def _bump_version(spec, version: int) -> None:
    with open_store(spec) as store, store.engine.begin() as conn:
        conn.execute(schema.store_meta.update().values(value=str(version)))


def test_a_store_of_a_newer_schema_is_refused_untouched(sqlite_path):
    _bump_version(sqlite_path, STORE_SCHEMA_VERSION + 2)
    before = sha256_file(sqlite_path)
    with pytest.raises(AlexnetDeployError) as refused:
        open_store(sqlite_path)
    assert str(refused.value.message) == (
        f"store {sqlite_path} has schema version {STORE_SCHEMA_VERSION + 2}; this "
        f"alexnet-deploy reads up to {STORE_SCHEMA_VERSION}: upgrade alexnet-deploy"
    )
    assert sha256_file(sqlite_path) == before


def _add_column(conn) -> None:
    conn.execute(text("ALTER TABLE runs ADD COLUMN note TEXT"))


def _add_column_then_fail(conn) -> None:
    _add_column(conn)
    raise RuntimeError("a migration step that fails halfway")


def migration_is_one_transaction(spec, main_report) -> None:
    """A store at version 1 with a run: a failing migration to 2 leaves it at 1 as it was; the
    working one brings it to 2 with its run kept."""
    run, results = main_report
    with open_store(spec) as store:
        store.add_run(run, results)
        engine = store.engine
        with pytest.raises(RuntimeError, match="halfway"):
            schema.ensure_schema(
                engine, store.display, version=2, migrations=[_add_column_then_fail]
            )
        with engine.connect() as conn:
            assert schema.stored_version(conn) == 1
            assert "note" not in {c["name"] for c in inspect(conn).get_columns("runs")}
        assert schema.ensure_schema(engine, store.display, version=2, migrations=[_add_column]) == 1
        with engine.connect() as conn:
            assert schema.stored_version(conn) == 2
            assert "note" in {c["name"] for c in inspect(conn).get_columns("runs")}
        assert len(store.results(run.uuid)) == 26


def test_an_older_store_is_migrated_in_one_transaction(sqlite_path, main_report):
    migration_is_one_transaction(str(sqlite_path), main_report)


@pytest.mark.parametrize(
    "content, why",
    [
        (b"name,images_per_s\nort,80\n" * 50, "file is not a database"),
        (b"SQLite format 3\x00" + bytes(range(256)) * 20, "file is not a database"),
    ],
    ids=["csv", "damaged"],
)
def test_a_file_that_is_not_a_store_is_refused_untouched(tmp_path, content, why):
    path = tmp_path / "results.sqlite"
    path.write_bytes(content)
    with pytest.raises(AlexnetDeployError) as refused:
        open_store(path)
    assert refused.value.message == f"{path} is not a results store ({why}); it was left as it is"
    assert path.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.sqlite"]


def test_another_programs_database_is_refused(tmp_path):
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
    conn.close()
    before = sha256_file(path)
    with pytest.raises(AlexnetDeployError, match="it holds tables users but no store_meta"):
        open_store(path)
    assert sha256_file(path) == before


def test_a_missing_store_is_made_only_when_asked(tmp_path):
    with pytest.raises(AlexnetDeployError, match="no results store at"):
        open_store(tmp_path / "none.sqlite", create=False)
    assert not (tmp_path / "none.sqlite").exists()
    with open_store(tmp_path / "new" / "dir" / "r.sqlite") as store:
        assert store.runs() == []
    with pytest.raises(AlexnetDeployError, match="is a directory"):
        open_store(tmp_path)
