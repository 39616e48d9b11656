"""The results store's tests run against real back ends: SQLite files in a temporary directory,
and a real PostgreSQL server, the one .ci/run starts (its URL in ALEXNET_DEPLOY_TEST_PG) or,
without it, one this session starts itself through the same script (.ci/postgres: the
distribution's binaries, loopback only, a password role). Without PostgreSQL binaries the
PostgreSQL tests are skipped with the reason, except under CI=true, where that is a failure.
Each test gets its own schema on the server (its search_path in the URL), dropped after it: the
URL's role must be able to create schemas in its database (its owner: .ci/postgres makes it so).
Another directory's conftest.py uses the same server with
``from tests.store.conftest import pg_server, pg_url  # noqa: F401``."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest

PG_ENV = "ALEXNET_DEPLOY_TEST_PG"
SCRIPT = Path(__file__).resolve().parents[2] / ".ci" / "postgres"
REPORTS = Path(__file__).resolve().parents[2] / "docs" / "benchmarks"
# the report directories under it (store import walks them): counted, not assumed, so a report
# committed there later keeps these tests true
REPORT_COUNT = len(list(REPORTS.rglob("bench-summary.json")))


@pytest.fixture(scope="session")
def pg_server():
    """The URL of a PostgreSQL server this session may use."""
    given = os.environ.get(PG_ENV)
    if given:
        yield given
        return
    if not glob.glob("/usr/lib/postgresql/*/bin/initdb"):
        reason = f"no PostgreSQL server binaries (apt-get install postgresql) and {PG_ENV} unset"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: {reason}")
        pytest.skip(reason)
    # not under pytest's base directory: that is private to this user, and the server runs as
    # 'postgres' when this session is root
    root = Path(tempfile.mkdtemp(prefix="alexnet-deploy-pg-"))
    started = subprocess.run(
        ["bash", str(SCRIPT), "start", str(root)], capture_output=True, text=True, timeout=120
    )
    if started.returncode != 0:
        pytest.fail(f".ci/postgres start failed: {started.stderr[-2000:]}")
    try:
        yield started.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run(["bash", str(SCRIPT), "stop", str(root)], capture_output=True, timeout=120)
        shutil.rmtree(root, ignore_errors=True)


def _admin(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql)


@pytest.fixture
def pg_url(pg_server):
    """A URL whose connections work in a fresh, empty schema of their own."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    _admin(pg_server, f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in pg_server else "?"
    yield f"{pg_server}{separator}options={quote(f'-csearch_path={schema}')}"
    _admin(pg_server, f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def sqlite_path(tmp_path):
    return tmp_path / "store" / "results.sqlite"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_spec(request, tmp_path):
    """Each test that takes it runs on both back ends."""
    if request.param == "sqlite":
        return str(tmp_path / "results.sqlite")
    return request.getfixturevalue("pg_url")


@pytest.fixture(scope="session")
def main_report():
    """A real report (docs/benchmarks/main: 26 configurations with raw samples) as a run."""
    from alexnet_deploy.store.from_report import run_from_report

    return run_from_report(REPORTS / "main")
