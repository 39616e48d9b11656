"""A store's engine from what ``--store`` gives: a path (SQLite), ``sqlite:///PATH``, or a
``postgresql://`` URL (PostgreSQL through psycopg 3), with how messages name it.

SQLite: nothing is written into a file that is not a store (its first bytes, then a read-only
look at its tables, come first); WAL mode (readers never wait for a writer), a busy timeout,
and a write transaction that takes the write lock when it begins (``BEGIN IMMEDIATE``), so a
second writer process waits its turn rather than failing when a read lock cannot be upgraded.
A store opened to read is never written: no file or directory made, no journal mode set.
PostgreSQL: a connect timeout, a connection checked before use (a server may drop an idle one
while a long bench runs), and the schema made or migrated under an advisory lock.

``option`` is how the command line names the store (``--store``, ``--history``, ``STORE``):
the hints say which to change.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError

from alexnet_deploy import constants as C
from alexnet_deploy.errors import AlexnetDeployError, UsageError
from alexnet_deploy.passwords import masked
from alexnet_deploy.store import schema as S
from alexnet_deploy.store.failures import not_a_store, sqlite_refusal, store_failure

SQLITE_HEADER = b"SQLite format 3\x00"  # an SQLite database's first 16 bytes
_TABLES = "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
WRITE = "store_write"  # execution option: this transaction writes (SQLite: BEGIN IMMEDIATE)
SCHEMA_LOCK = "schema_lock"  # execution option: PostgreSQL takes _PG_LOCK first
_PG_LOCK = 0x616C6578  # pg_advisory_xact_lock key: one schema creation or migration at a time
_POSTGRES_SCHEMES = ("postgresql", "postgres")
_URL_FORM = "postgresql://USER:PASSWORD@HOST:PORT/DATABASE, or a file path (SQLite)"


def sqlite_header(path: Path, display: str | None = None) -> bytes:
    """The first bytes of ``path`` where SQLite's header stands (b"" for an empty file)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(len(SQLITE_HEADER))
    except OSError as err:
        raise AlexnetDeployError(
            f"cannot read store {display or path} ({err.strerror})",
            hint="check the file's permissions",
        ) from None


def is_sqlite_file(path: Path) -> bool:
    """``path`` is a file that starts with SQLite's header."""
    path = Path(path)
    return path.is_file() and sqlite_header(path) == SQLITE_HEADER


def sqlite_file(spec: str | Path) -> Path | None:
    """The SQLite file ``spec`` names (a path, or ``sqlite:///PATH``); None for a server's URL.
    A usage error for a URL that is malformed."""
    text = str(spec)
    if "://" not in text:
        return Path(text)
    if _scheme(text) != "sqlite":
        return None
    database = _url(text).database
    return Path(database) if database else None


def engine_for(
    spec: str | Path, *, writes: bool, option: str = "--store"
) -> tuple[Engine, str, str]:
    """(engine, display, back end "sqlite" or "postgresql") for ``spec``; a usage error for a
    URL that is malformed or of another scheme. ``writes``: a missing SQLite file (and its
    directory) may be made; else a missing one is refused."""
    path = sqlite_file(spec)
    if path is not None:
        return _sqlite_engine(path, writes, option)
    text = str(spec)
    if _scheme(text) in _POSTGRES_SCHEMES:
        return _postgres_engine(_url(text))
    raise UsageError(
        f"store URL scheme {_scheme(text)!r} is not supported",
        hint="a file path (SQLite, the embedded default) or postgresql://USER:PASSWORD@HOST:PORT/DB",
    )


def probe_store(spec: str | Path, *, option: str = "--store") -> None:
    """Refuse now, writing nothing, what storing a run into ``spec`` would refuse later: a
    malformed URL, a server that cannot be reached or refuses the login, a store of a newer
    schema, a file that is not a store, a directory that cannot be written. A store not there
    yet is not made here: storing the first run makes it (store/db.py ``open_store``)."""
    from alexnet_deploy.fileio import prepare_output

    path = sqlite_file(spec)
    if path is not None and not path.exists():
        prepare_output(path, force=True, what="results store", option=option)
        return
    engine, display, _ = engine_for(spec, writes=False, option=option)
    try:
        with opening(display, option), engine.connect() as conn:
            S.checked_version(conn, display, option=option)
    finally:
        engine.dispose()


@contextlib.contextmanager
def opening(display: str, option: str) -> Iterator[None]:
    """A database error while a store is opened, as one line (store/failures.py)."""
    try:
        yield
    except DBAPIError as err:
        raise store_failure(err, display, "opening it", False, False, option) from err


def _scheme(text: str) -> str:
    return text.split("://", 1)[0].lower().split("+")[0]


def _url(text: str) -> URL:
    """``text`` parsed, refusing what would be misread: more than one '@' before the query (a
    password's own '@' not written %40 would be read as part of the host)."""
    if _scheme(text) != "sqlite" and text.split("?", 1)[0].count("@") > 1:
        raise UsageError(
            f"store URL {masked(text)} holds more than one '@': write a password's '@' as %40, "
            "or use PGPASSWORD",
            hint="leave the password out of the URL (postgresql://USER@HOST:PORT/DB) and set "
            "PGPASSWORD or a ~/.pgpass line",
        )
    try:
        return make_url(text)
    except (ArgumentError, ValueError):
        raise UsageError(f"store URL {masked(text)} is malformed", hint=_URL_FORM) from None


def _sqlite_engine(path: Path, writes: bool, option: str) -> tuple[Engine, str, str]:
    display = str(path)
    _check_sqlite_file(path, display, writes, option)
    if writes:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise AlexnetDeployError(
                f"cannot make store {display}: its directory {path.parent} cannot be made "
                f"({err.strerror})",
                hint=f"use a path in a writable directory for {option}",
            ) from None
    engine = create_engine(
        URL.create("sqlite+pysqlite", database=str(path)),
        connect_args={"timeout": C.STORE_BUSY_TIMEOUT_S},
    )

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # transactions begin where _begin says
        cursor = dbapi_connection.cursor()
        if writes:  # a reader leaves the file's journal mode as it is
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn) -> None:
        writing = conn.get_execution_options().get(WRITE)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")

    return engine, display, "sqlite"


def _check_sqlite_file(path: Path, display: str, writes: bool, option: str) -> None:
    """Refuse what is not a store before writing anything: a directory, a file that is not an
    SQLite database (its first bytes), one SQLite cannot read or another program's database
    (opened read-only), or, unless ``writes``, no file at all."""
    if path.is_dir():
        raise AlexnetDeployError(
            f"store {display} is a directory",
            hint=f"use a file name for {option}, e.g. work/results.sqlite",
        )
    if not path.exists():
        if writes:
            return
        raise AlexnetDeployError(
            f"no results store at {display}",
            hint=f"check the path given to {option}; a store is made by 'bench --store' or "
            "'alexnet-deploy store import REPORT_DIR'",
        )
    head = sqlite_header(path, display)
    if not head:
        return  # an empty file: SQLite makes it a database (a reader finds no store in it)
    if head != SQLITE_HEADER:
        raise not_a_store(display, "file is not a database", option)
    try:
        with contextlib.closing(
            sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        ) as conn:
            tables = {name for (name,) in conn.execute(_TABLES)}
    except sqlite3.DatabaseError as err:
        raise sqlite_refusal(display, str(err), option) from None
    if tables and S.store_meta.name not in tables:  # another program's database
        raise S.foreign_database(display, tables, option)


def _postgres_engine(url: URL) -> tuple[Engine, str, str]:
    display = url.set(drivername=url.drivername.split("+")[0]).render_as_string(hide_password=True)
    engine = create_engine(
        url.set(drivername="postgresql+psycopg"),
        pool_pre_ping=True,
        connect_args={"connect_timeout": C.STORE_CONNECT_TIMEOUT_S},
    )

    @event.listens_for(engine, "begin")
    def _begin(conn) -> None:
        if conn.get_execution_options().get(SCHEMA_LOCK):
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_LOCK})")

    return engine, display, "postgresql"
