"""The results store's tables, declared once for both back ends (SQLAlchemy Core: SQLite's file
and a PostgreSQL server hold the same schema), its version and the migrations between versions.

``store_meta`` holds ``schema_version``. :func:`ensure_schema` makes a new store at
:data:`~alexnet_deploy.store.records.STORE_SCHEMA_VERSION`, brings an older one up to it by
applying :data:`MIGRATIONS` in one transaction (all of them or none), and refuses a newer one
naming both versions: an older alexnet-deploy never writes into a store it does not understand.

JSON values (a case's key, a row's whole record, raw samples, runtime versions, a verdict's
detail) are TEXT holding ``json.dumps(..., sort_keys=True)``: SQLite and PostgreSQL then hold
byte-identical text, and no back end's JSON type decides how a float or a key order comes back.
Timestamps are the reports' ISO 8601 text, which sorts in time order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Double,
    Engine,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    select,
)

from alexnet_deploy.errors import AlexnetDeployError
from alexnet_deploy.store.records import STORE_SCHEMA_VERSION

metadata = MetaData()

store_meta = Table(
    "store_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("run_id", Integer, primary_key=True, autoincrement=True),
    Column("uuid", String(64), nullable=False),
    Column("created", String(40), nullable=False),  # ISO 8601, the report's
    Column("kind", String(16), nullable=False),
    Column("git_commit", String(80)),
    Column("branch", Text),
    Column("machine", String(64), nullable=False),  # the report's environment_key
    Column("cpu_class", String(32), nullable=False),
    Column("cpu_model", Text, nullable=False),
    Column("runtimes", Text, nullable=False),  # JSON
    Column("model_name", Text, nullable=False),
    Column("model_sha256", String(64), nullable=False),
    Column("command", Text),
    Column("source", Text),
    Index("runs_uuid", "uuid", unique=True),
    Index("runs_created", "created", "run_id"),
)

results = Table(
    "results",
    metadata,
    Column("result_id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
    Column("position", Integer, nullable=False),  # the row's place in its run
    Column("label", Text, nullable=False),
    Column("case_key", Text, nullable=False),  # JSON: Case.key()
    Column("ok", Boolean, nullable=False),
    Column("images_per_s", Double),
    Column("p50_ms", Double),
    Column("p50_ci_low_ms", Double),
    Column("p50_ci_high_ms", Double),
    Column("p99_ms", Double),
    Column("p99_ci_low_ms", Double),
    Column("p99_ci_high_ms", Double),
    Column("top1_agreement", Double),
    Column("centered_cosine", Double),
    Column("record", Text, nullable=False),  # JSON: BenchRow.to_columns()
    Column("samples_ms", Text),  # JSON list, or NULL where the run kept none
    Index("results_run", "run_id", "position"),
    Index("results_label", "label"),
)

verdicts = Table(
    "verdicts",
    metadata,
    Column("verdict_id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, ForeignKey("runs.run_id", ondelete="CASCADE"), nullable=False),
    Column("label", Text, nullable=False),
    Column("verdict", String(32), nullable=False),
    Column("method", String(64), nullable=False),
    Column("change_commit", String(80)),
    Column("detail", Text, nullable=False),  # JSON
    Index("verdicts_label", "label", "run_id"),
)

TABLES = tuple(t.name for t in metadata.sorted_tables)
VERSION_KEY = "schema_version"

# MIGRATIONS[i] brings a store from version i + 1 to i + 2, on the connection of the one
# transaction that applies every step needed (a failure leaves the store at its old version).
# Adding one: bump STORE_SCHEMA_VERSION (records.py), change the tables above to the new
# version, append the step (e.g. ``conn.exec_driver_sql("ALTER TABLE results ADD COLUMN ...")``),
# and say what it does in docs/store.md.
Migration = Callable[[Connection], None]
MIGRATIONS: list[Migration] = []


def foreign_database(display: str, tables, option: str = "--store") -> AlexnetDeployError:
    """A database that holds tables but is not a store: never written into."""
    return AlexnetDeployError(
        f"{display} is not a results store: it holds tables {', '.join(sorted(tables))} but no "
        f"{store_meta.name}; it was left as it is",
        hint=f"use a new file, or a database (or schema) of its own, for {option}",
    )


def stored_version(conn: Connection) -> int | None:
    """The store's schema version; None for a database without the store's tables."""
    if not inspect(conn).has_table(store_meta.name):
        return None
    value = conn.execute(
        select(store_meta.c.value).where(store_meta.c.key == VERSION_KEY)
    ).scalar_one_or_none()
    return None if value is None else int(value)


def checked_version(
    conn: Connection, display: str, version: int = STORE_SCHEMA_VERSION, option: str = "--store"
) -> int | None:
    """The store's schema version (None: no store's tables yet), refusing, without writing,
    what no command may use: a store of a newer version, and a database whose tables of the
    store's names are not a store's."""
    found = stored_version(conn)
    if found is None:
        clash = set(inspect(conn).get_table_names()) & set(TABLES)
        if clash:
            raise foreign_database(display, clash, option)
    elif found > version:
        raise AlexnetDeployError(
            f"store {display} has schema version {found}; this alexnet-deploy reads up to "
            f"{version}: upgrade alexnet-deploy",
            hint="pip install -U alexnet-deploy (a newer version wrote this store)",
        )
    return found


def readable_schema(
    engine: Engine, display: str, *, version: int = STORE_SCHEMA_VERSION, option: str = "--store"
) -> None:
    """Refuse, writing nothing, a store a reading command cannot read: none there yet (an empty
    file, a database without its tables), one of a newer version, or one of an older version
    (a reader never migrates: the next command that stores into it does)."""
    with engine.connect() as conn:
        found = checked_version(conn, display, version, option)
    if found is None:
        raise AlexnetDeployError(
            f"no results store at {display} yet (it holds none of the store's tables)",
            hint=f"check what was given to {option}; a store is made by 'bench --store' or "
            "'alexnet-deploy store import REPORT_DIR'",
        )
    if found < version:
        raise AlexnetDeployError(
            f"store {display} has schema version {found}, older than this alexnet-deploy's "
            f"{version}; reading it does not migrate it",
            hint="the next command that stores into it migrates it ('alexnet-deploy store "
            "import REPORT_DIR' or 'bench --store'); or read it with the version that wrote it",
        )


def ensure_schema(
    engine: Engine,
    display: str,
    *,
    writer: Engine | None = None,
    version: int = STORE_SCHEMA_VERSION,
    migrations: Sequence[Migration] | None = None,
    option: str = "--store",
) -> int:
    """Make the store's tables at ``version``, or migrate an older store up to it, in one
    transaction (on ``writer``, default ``engine``); refuse a store of a newer version, and a
    database whose tables of the store's names are not a store's. A store already at
    ``version`` is only read. Returns the version the store had (0: made now)."""
    steps = MIGRATIONS if migrations is None else migrations
    with engine.connect() as conn:
        found = checked_version(conn, display, version, option)
    if found == version:
        return found
    with (writer or engine).begin() as conn:  # looked at again: another writer may be first
        found = checked_version(conn, display, version, option)
        if found is None:
            metadata.create_all(conn)
            conn.execute(store_meta.insert().values(key=VERSION_KEY, value=str(version)))
            return 0
        if found < version:
            if len(steps) < version - 1:
                raise AlexnetDeployError(  # a bug: a version bumped without its migration
                    f"no migration from schema version {found} to {version}"
                )
            for step in steps[found - 1 : version - 1]:
                step(conn)
            conn.execute(
                store_meta.update()
                .where(store_meta.c.key == VERSION_KEY)
                .values(value=str(version))
            )
        return found
