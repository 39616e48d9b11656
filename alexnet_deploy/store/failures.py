"""A database error as one line: what failed, on which store (as ``Store.display`` shows it:
a URL with its password masked), what was being done and, for a write, whether anything of it
may be stored. The driver's own text, which may quote the connection string, is matched against
known causes and never shown (``--debug`` shows the traceback)."""

from __future__ import annotations

import re
import sqlite3

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from alexnet_deploy import constants as C
from alexnet_deploy.errors import AlexnetDeployError


def not_a_store(display: str, why: str, option: str = "--store") -> AlexnetDeployError:
    return AlexnetDeployError(
        f"{display} is not a results store ({why}); it was left as it is",
        hint=f"use a new file name for {option} (or move this file away); a store is an SQLite "
        "file alexnet-deploy made",
    )


def damaged(display: str, why: str, option: str = "--store") -> AlexnetDeployError:
    """An SQLite store whose pages SQLite cannot read: left as it is, with how to recover it."""
    return AlexnetDeployError(
        f"{display} is damaged ({why}); it was left as it is",
        hint=f"'sqlite3 {display} .recover | sqlite3 RECOVERED.sqlite' copies what can be read "
        f"into a new file; use that file (or a new name) for {option}",
    )


def sqlite_refusal(display: str, text: str, option: str = "--store") -> AlexnetDeployError:
    """SQLite's own refusal of a file as one line: damaged pages, or not a database at all."""
    text = text.lower()
    if "malformed" in text:
        return damaged(display, "database disk image is malformed", option)
    return not_a_store(display, text, option)


_PG_PORT = 5432  # libpq's port where a URL names none

# (SQLSTATE codes, a pattern of the driver's text) -> what to say, and the hint: the driver's
# own text is matched, never shown
_PG_FAILURES = (
    (("28p01",), r"password authentication failed", "password authentication failed",
     "check the user and password (or PGPASSWORD, ~/.pgpass)"),
    ((), r"no password supplied",
     "the server asks for a password and none was given: PGPASSWORD, ~/.pgpass or the URL",
     "set PGPASSWORD (or a ~/.pgpass line) for this user; a URL's password shows in the "
     "process list"),
    ((), r"invalid response to ssl negotiation|expected authentication request from server",
     "the server at {server} did not answer as PostgreSQL",
     "check the port: another kind of server listens there (PostgreSQL's default is 5432)"),
    (("28000",), r"no pg_hba\.conf entry|role \".*\" does not exist",
     "the server refused this user", "check the user name and the server's pg_hba.conf"),
    (("3d000",), r"database \".*\" does not exist", "the database does not exist",
     "create it (createdb NAME), or name an existing one in the URL"),
    ((), r"connection refused", "connection refused",
     "check the host and port, and that the server is running"),
    ((), r"could not translate host name|name or service not known|nodename nor servname",
     "unknown host", "check the host name in the URL"),
    ((), r"timeout expired|timed out", "no answer within the connect timeout",
     "check the host, port and firewall"),
)  # fmt: skip
_SQLITE_FAILURES = (
    ((), r"database is locked|database is busy",
     "busy: another run held its write lock for over {busy:g} s",
     "retry when the other run has finished"),
    ((), r"readonly database|read-only", "the file is read-only",
     "make it writable, or use a writable path for {option}"),
    ((), r"disk is full|disk full", "the disk is full", "free space on that file system"),
    ((), r"unable to open database file", "the file cannot be opened",
     "check the path and its directory's permissions"),
)  # fmt: skip


def store_failure(
    err: DBAPIError, display: str, doing: str, stores: bool, committing: bool,
    option: str = "--store",
) -> AlexnetDeployError:  # fmt: skip
    """A database error as one line naming the store and what was being done; for a write,
    whether anything of it may have been stored. ``option``: how the command line names the
    store, for the hint."""
    orig = err.orig
    text = str(orig).lower()
    code = (getattr(orig, "sqlstate", None) or "").lower()
    if isinstance(orig, sqlite3.DatabaseError) and (
        "not a database" in text or "malformed" in text
    ):
        return sqlite_refusal(display, text, option)
    table = _SQLITE_FAILURES if isinstance(orig, sqlite3.Error) else _PG_FAILURES
    for codes, pattern, what, hint in table:
        if code in codes or re.search(pattern, text):
            server = _server(display) if "{server}" in what else ""
            what = what.format(busy=C.STORE_BUSY_TIMEOUT_S, server=server)
            return AlexnetDeployError(
                f"cannot connect to {display}: {what}"
                if doing == "opening it"
                else f"store {display} failed while {doing}: {what}"
                + ("; nothing of it was stored" if stores and not committing else ""),
                hint=hint.format(option=option),
            )
    if err.connection_invalidated or code.startswith(("08", "57p")):
        said = (
            "the server may or may not have committed it: 'store list' shows whether"
            if committing
            else "nothing of it was stored"
            if stores
            else "nothing was changed"
        )
        return AlexnetDeployError(
            f"lost the connection to {display} while {doing}: {said}",
            hint="check the server, then run the command again",
        )
    state = f", SQLSTATE {code.upper()}" if code else ""
    return AlexnetDeployError(
        f"store {display} failed while {doing} ({type(orig).__name__}{state})"
        + ("; nothing of it was stored" if stores and not committing else ""),
        hint="run with --debug for the database's own message",
    )


def _server(display: str) -> str:
    """HOST:PORT of a server's URL (the default port where the URL names none)."""
    url = make_url(display)
    return f"{url.host or 'localhost'}:{url.port or _PG_PORT}"
