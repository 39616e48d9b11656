"""The team store on a real PostgreSQL server (tests/store/conftest.py): a real report stored and
read back exactly as the SQLite file holds it, two writer processes at once (on a new, empty
database: the schema made once), a connection killed by the server in the middle of a run
(nothing of it stored; the next run works), a newer schema refused, an older one migrated in
one transaction."""

from __future__ import annotations

import dataclasses

import psycopg
import pytest
from sqlalchemy import event

from alexnet_deploy.errors import AlexnetDeployError
from alexnet_deploy.store.db import open_store
from alexnet_deploy.store.records import STORE_SCHEMA_VERSION
from tests.store.test_store_sqlite import (
    _bump_version,
    migration_is_one_transaction,
    two_writers,
)


def test_both_back_ends_hold_the_same_run(pg_url, tmp_path, main_report):
    run, results = main_report
    read = {}
    for spec in (pg_url, str(tmp_path / "results.sqlite")):
        with open_store(spec) as store:
            store.add_run(run, results)
            read[store.backend] = (store.runs(), store.results(run.uuid), store.configurations())
    assert read["postgresql"] == read["sqlite"]  # floats, intervals, samples, records alike
    assert [dataclasses.replace(r, run=None) for r in read["postgresql"][1]] == results


def test_two_writer_processes_at_once_both_store(pg_url):
    two_writers(pg_url)  # the schema is made by whichever comes first, once


def test_a_connection_dropped_mid_run_stores_nothing(pg_url, pg_server, main_report):
    run, results = main_report
    with open_store(pg_url) as store:
        killed = []

        def kill_the_connection(conn, cursor, statement, *_args) -> None:
            """The run's row is in; before its results go in, the server ends the session."""
            if statement.startswith("INSERT INTO results") and not killed:
                pid = conn.connection.dbapi_connection.info.backend_pid
                with psycopg.connect(pg_server, autocommit=True) as admin:
                    killed.append(
                        admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,)).fetchone()
                    )

        event.listen(store.engine, "before_cursor_execute", kill_the_connection)
        with pytest.raises(AlexnetDeployError) as lost:
            store.add_run(run, results)
        event.remove(store.engine, "before_cursor_execute", kill_the_connection)
        assert killed == [(True,)]
        assert lost.value.message == (
            f"lost the connection to {store.display} while storing run {run.uuid[:8]}: "
            "nothing of it was stored"
        )
        assert store.runs() == []  # not the run's row without its results
        store.add_run(run, results)  # the next run works (a fresh connection)
        assert len(store.results(run.uuid)) == 26


def test_a_store_of_a_newer_schema_is_refused(pg_url):
    _bump_version(pg_url, STORE_SCHEMA_VERSION + 2)
    with pytest.raises(AlexnetDeployError) as refused:
        open_store(pg_url)
    message = refused.value.message
    assert (
        f"has schema version {STORE_SCHEMA_VERSION + 2}; this alexnet-deploy reads up to "
        f"{STORE_SCHEMA_VERSION}: upgrade alexnet-deploy" in message
    )
    assert ":***@" in message and pg_url.split(":")[2].split("@")[0] not in message


def test_an_older_store_is_migrated_in_one_transaction(pg_url, main_report):
    migration_is_one_transaction(pg_url, main_report)


def test_a_database_with_tables_of_the_stores_names_is_refused(pg_url, pg_server):
    schema = pg_url.rsplit("search_path%3D", 1)[1]
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f"CREATE TABLE {schema}.runs (id int)")
    with pytest.raises(AlexnetDeployError, match="holds tables runs but no store_meta"):
        open_store(pg_url)
