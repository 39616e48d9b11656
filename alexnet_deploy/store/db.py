"""The results store: every stored run, its configurations' results and the gate's verdicts, in
one SQLite file (the embedded default, ``WORK_DIR/results.sqlite``) or on a PostgreSQL server
(``postgresql://USER:PASSWORD@HOST:PORT/DB``): the same schema (store/schema.py) and the same
queries on both, through SQLAlchemy Core.

Every write is one transaction: a run is stored whole or not at all, and a connection lost
mid-run leaves nothing of it; two writer processes queue (store/connect.py). Every failure is
an :class:`AlexnetDeployError` of one line naming the store as :attr:`Store.display` shows it
(a URL with its password masked), never the driver's own text (store/failures.py).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from sqlalchemy import Connection, Engine, Integer, func, select
from sqlalchemy.exc import DBAPIError, IntegrityError

from alexnet_deploy.errors import AlexnetDeployError, UsageError
from alexnet_deploy.store import schema as S
from alexnet_deploy.store.connect import SCHEMA_LOCK, WRITE, engine_for, opening
from alexnet_deploy.store.failures import store_failure
from alexnet_deploy.store.records import (
    KINDS,
    SERIES_KINDS,
    StoredResult,
    StoredRun,
    StoredVerdict,
)
from alexnet_deploy.store.rows import (
    result_from_row,
    result_values,
    run_from_row,
    run_values,
    to_json,
    utc_iso,
)


class SeriesKey(NamedTuple):
    """What keys a series (Store.configurations): a configuration of one model on one
    machine class (CPU class and CPU model); the model's name is its latest run's."""

    label: str
    cpu_class: str
    cpu_model: str
    model_sha256: str
    model_name: str


class RunAlreadyStored(AlexnetDeployError):
    """A run whose uuid the store holds already (a run's id is its report's content): the same
    run, not stored twice."""


def open_store(spec: str | Path, *, create: bool = True, option: str = "--store") -> Store:
    """A store: a path (SQLite), or a ``postgresql://`` URL. ``create`` (a command that stores):
    a store not there yet is made (the file with its directory, or the tables in the database;
    :attr:`Store.made` says so) and an older one migrated; else (a command that reads) nothing
    is written, and a store not there yet, or of an older version, is refused. A newer one is
    always refused. ``option``: how the command line names the store, for the hints."""
    engine, display, backend = engine_for(spec, writes=create, option=option)
    store = Store(engine, display, backend, option)
    try:
        with opening(display, option):
            if create:
                writer = engine.execution_options(**{SCHEMA_LOCK: True, WRITE: True})
                store.made = S.ensure_schema(engine, display, writer=writer, option=option) == 0
            else:
                S.readable_schema(engine, display, option=option)
    except BaseException:
        store.close()
        raise
    return store


class Store:
    """An open store (a context manager: closed on exit). Open one with :func:`open_store`."""

    def __init__(self, engine: Engine, display: str, backend: str, option: str = "--store"):
        self.engine = engine  # tests attach SQLAlchemy events to the real engine
        self.display = display
        self.backend = backend  # "sqlite" or "postgresql"
        self.option = option  # how the command line names the store, for hints
        self.made = False  # open_store made it (a new file, or the tables in a database)
        self._writer = engine.execution_options(**{WRITE: True})

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.engine.dispose()

    # --- writing ---------------------------------------------------------------------------

    def add_run(self, run: StoredRun, results: list[StoredResult]) -> int:
        """Store ``run`` and its results in one transaction; its run_id. A run whose uuid is
        already stored is refused (nothing written)."""
        if run.kind not in KINDS:
            raise ValueError(f"kind {run.kind!r} is not one of {KINDS}")
        doing = f"storing run {run.uuid[:8]}"
        with self._transaction(doing, stores=True) as conn:
            found = conn.execute(select(S.runs.c.source).where(S.runs.c.uuid == run.uuid)).first()
            if found is not None:
                raise self._stored_already(run.uuid, found.source)
            try:
                inserted = conn.execute(S.runs.insert().values(**run_values(run)))
            except IntegrityError:  # another writer stored the same uuid meanwhile
                raise self._stored_already(run.uuid, None) from None
            run_id = inserted.inserted_primary_key[0]
            if results:
                conn.execute(
                    S.results.insert(),
                    [result_values(r, run_id, i) for i, r in enumerate(results)],
                )
            return int(run_id)

    def add_verdicts(self, verdicts: list[StoredVerdict]) -> None:
        """Store the gate's verdicts in one transaction; a verdict for a run, label and method
        already judged replaces the earlier one. A run that is not stored is refused."""
        if not verdicts:
            return
        with self._transaction("storing verdicts", stores=True) as conn:
            ids = self._run_ids(conn, {v.run_uuid for v in verdicts})
            for v in verdicts:
                conn.execute(
                    S.verdicts.delete().where(
                        S.verdicts.c.run_id == ids[v.run_uuid],
                        S.verdicts.c.label == v.label,
                        S.verdicts.c.method == v.method,
                    )
                )
            conn.execute(
                S.verdicts.insert(),
                [
                    {
                        "run_id": ids[v.run_uuid],
                        "label": v.label,
                        "verdict": v.verdict,
                        "method": v.method,
                        "change_commit": v.change_commit,
                        "detail": to_json(v.detail),
                    }
                    for v in verdicts
                ],
            )

    # --- reading ---------------------------------------------------------------------------

    def runs(self, *, kind: str | None = None, limit: int | None = None) -> list[StoredRun]:
        """The stored runs (of ``kind``), oldest first; ``limit``: the last N."""
        query = select(S.runs).order_by(S.runs.c.created.desc(), S.runs.c.run_id.desc())
        if kind is not None:
            query = query.where(S.runs.c.kind == kind)
        if limit is not None:
            query = query.limit(limit)
        with self._transaction("reading runs") as conn:
            return [run_from_row(r) for r in reversed(conn.execute(query).all())]

    def count_runs(self, *, kind: str | None = None) -> int:
        """How many runs (of ``kind``) the store holds."""
        query = select(func.count()).select_from(S.runs)
        if kind is not None:
            query = query.where(S.runs.c.kind == kind)
        with self._transaction("reading runs") as conn:
            return int(conn.execute(query).scalar_one())

    def run(self, uuid_prefix: str) -> StoredRun:
        """The run whose uuid starts with ``uuid_prefix`` (8 characters are enough, as every
        output shows them); none or several is a user error."""
        prefix = uuid_prefix.strip().lower()
        if not re.fullmatch(r"[0-9a-f]{4,64}", prefix):
            raise UsageError(
                f"run {uuid_prefix!r} is not a run id",
                hint="give the id 'store list' shows (8 or more hex digits)",
            )
        query = select(S.runs).where(S.runs.c.uuid.startswith(prefix, autoescape=True)).limit(2)
        with self._transaction("reading runs") as conn:
            found = conn.execute(query).all()
        if len(found) != 1:
            raise AlexnetDeployError(
                f"{'no run' if not found else 'several runs'} {prefix} in store {self.display}",
                hint="'alexnet-deploy store list' shows the stored runs"
                if not found
                else "give more of the run id",
            )
        return run_from_row(found[0])

    def results(self, run_uuid: str) -> list[StoredResult]:
        """A stored run's results in the order it ran them (each with ``.run`` set)."""
        with self._transaction("reading results") as conn:
            run_id = self._run_ids(conn, {run_uuid})[run_uuid]
            runs = self._runs_by_id(conn, {run_id})
            rows = conn.execute(
                select(S.results).where(S.results.c.run_id == run_id).order_by(S.results.c.position)
            ).all()
        return [result_from_row(r, runs[r.run_id]) for r in rows]

    def result_counts(self) -> dict[str, tuple[int, int]]:
        """Each stored run's uuid -> (results, of which ok)."""
        query = (
            select(
                S.runs.c.uuid,
                func.count(S.results.c.result_id),
                func.coalesce(func.sum(S.results.c.ok.cast(Integer)), 0),
            )
            .select_from(S.runs.outerjoin(S.results))
            .group_by(S.runs.c.uuid)
        )
        with self._transaction("reading runs") as conn:
            return {uuid: (int(n), int(ok)) for uuid, n, ok in conn.execute(query)}

    def series(
        self,
        label: str,
        cpu_class: str,
        model_sha256: str,
        *,
        cpu_model: str | None = None,
        kinds: tuple[str, ...] = SERIES_KINDS,
        before: str | None = None,
        limit: int | None = None,
    ) -> list[StoredResult]:
        """One configuration's results (ok and failed) for one model on one machine class (a
        CPU class and, given, its ``cpu_model``: two CPUs of a class differ up to 2.5x), oldest
        first, each with ``.run`` set: of runs of ``kinds`` (bench's rules: never tune's or
        plan's), made before the time ``before`` (ISO 8601) where given; ``limit``: the last N."""
        conditions = [
            S.results.c.label == label,
            S.runs.c.cpu_class == cpu_class,
            S.runs.c.model_sha256 == model_sha256,
            S.runs.c.kind.in_(kinds),
        ]
        if cpu_model is not None:
            conditions.append(S.runs.c.cpu_model == cpu_model)
        if before is not None:
            conditions.append(S.runs.c.created < utc_iso(before))
        query = (
            select(S.results)
            .join(S.runs, S.runs.c.run_id == S.results.c.run_id)
            .where(*conditions)
            .order_by(S.runs.c.created.desc(), S.runs.c.run_id.desc(), S.results.c.position.desc())
        )
        if limit is not None:
            query = query.limit(limit)
        with self._transaction("reading a series") as conn:
            rows = list(reversed(conn.execute(query).all()))
            runs = self._runs_by_id(conn, {r.run_id for r in rows})
        return [result_from_row(r, runs[r.run_id]) for r in rows]

    def configurations(self, *, kinds: tuple[str, ...] = SERIES_KINDS) -> list[SeriesKey]:
        """Every stored series of runs of ``kinds``: (label, cpu_class, cpu_model,
        model_sha256, model_name), sorted; a model is its sha256, named as its latest run
        names it (one model stored under two names is one series)."""
        keys = (S.results.c.label, S.runs.c.cpu_class, S.runs.c.cpu_model, S.runs.c.model_sha256)
        query = (
            select(*keys)
            .join(S.runs, S.runs.c.run_id == S.results.c.run_id)
            .where(S.runs.c.kind.in_(kinds))
            .distinct()
        )
        names = select(S.runs.c.model_sha256, S.runs.c.model_name).order_by(
            S.runs.c.created, S.runs.c.run_id
        )
        with self._transaction("reading configurations") as conn:
            found = conn.execute(query).all()
            latest = dict(conn.execute(names).all())  # the newest run's name wins
        return sorted(SeriesKey(*key, latest[key[-1]]) for key in found)

    def verdicts(
        self, label: str, cpu_class: str, model_sha256: str, *, cpu_model: str | None = None
    ) -> list[StoredVerdict]:
        """The gate's stored verdicts on one configuration, in the order of the runs judged;
        with ``cpu_model``, of that machine class only (as ``series`` reads it)."""
        query = (
            select(S.verdicts, S.runs.c.uuid)
            .join(S.runs, S.runs.c.run_id == S.verdicts.c.run_id)
            .where(
                S.verdicts.c.label == label,
                S.runs.c.cpu_class == cpu_class,
                S.runs.c.model_sha256 == model_sha256,
            )
            .order_by(S.runs.c.created, S.runs.c.run_id, S.verdicts.c.verdict_id)
        )
        if cpu_model is not None:
            query = query.where(S.runs.c.cpu_model == cpu_model)
        with self._transaction("reading verdicts") as conn:
            rows = conn.execute(query).all()
        return [
            StoredVerdict(
                run_uuid=r.uuid,
                label=r.label,
                verdict=r.verdict,
                method=r.method,
                change_commit=r.change_commit,
                detail=json.loads(r.detail),
            )
            for r in rows
        ]

    # --- in one place: transactions, lookups and what a failure says ------------------------

    @contextlib.contextmanager
    def _transaction(self, doing: str, *, stores: bool = False) -> Iterator[Connection]:
        """One transaction (writing: on the writer, which SQLite begins IMMEDIATE); a database
        error becomes one line. ``stores``: say whether the write may have happened."""
        committing = False
        try:
            with (self._writer if stores else self.engine).connect() as conn:
                transaction = conn.begin()
                try:
                    yield conn
                except BaseException:
                    transaction.rollback()
                    raise
                committing = True
                transaction.commit()
        except DBAPIError as err:
            raise store_failure(err, self.display, doing, stores, committing, self.option) from err

    def _stored_already(self, uuid: str, source: str | None) -> RunAlreadyStored:
        where = f" (from {source})" if source else ""
        return RunAlreadyStored(
            f"run {uuid[:8]} is already in store {self.display}{where}: not stored twice",
            hint="a report is stored once; 'alexnet-deploy store list' shows the runs",
        )

    def _run_ids(self, conn: Connection, uuids: set[str]) -> dict[str, int]:
        found = dict(
            conn.execute(
                select(S.runs.c.uuid, S.runs.c.run_id).where(S.runs.c.uuid.in_(uuids))
            ).all()
        )
        missing = sorted(uuids - set(found))
        if missing:
            raise AlexnetDeployError(
                f"no run {', '.join(u[:8] for u in missing)} in store {self.display}",
                hint="'alexnet-deploy store list' shows the stored runs",
            )
        return found

    @staticmethod
    def _runs_by_id(conn: Connection, ids: set[int]) -> dict[int, StoredRun]:
        if not ids:
            return {}
        rows = conn.execute(select(S.runs).where(S.runs.c.run_id.in_(ids))).all()
        return {r.run_id: run_from_row(r) for r in rows}
