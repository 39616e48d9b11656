"""The results store's typed records: one ``StoredRun`` per stored run (bench, tune, gate --run,
plan, or a report directory imported), holding a ``StoredResult`` per configuration, and the
gate's ``StoredVerdict`` per configuration of a run it judged. The store (store/db.py) writes and
reads these, the gate's history mode (gate/changepoint.py) and the dashboard (dashboard/) read
them; nothing else touches the tables.

A configuration is the row's ``Case`` key (``Case.key()``, a dict) and its label
(``BenchRow.label``); series are keyed by (label, machine class, model_sha256), a machine class
being the CPU class (cpu_isa.py's class name, e.g. "vnni", "avx2") and the CPU model string
together: two CPUs of one class differ 0.65-2.5x per configuration (the recorded Xeon and AMD
EPYC reports, both "vnni"), so a series never crosses classes, CPU models or models.
"""

from __future__ import annotations

from dataclasses import dataclass, field

STORE_SCHEMA_VERSION = 1  # bumped with a migration in store/schema.py's MIGRATIONS
KINDS = ("bench", "tune", "gate", "plan", "import")
# the kinds a series (the gate's history, the dashboard's trends) is made of: runs measured by
# bench's rules; tune's and plan's timings follow their own and are kept, not compared with these
SERIES_KINDS = ("bench", "gate", "import")


def short_commit(commit: str | None, digits: int = 12, dirty: str = "-dirty") -> str | None:
    """A commit as outputs name it: its first ``digits`` hex digits, then ``dirty`` where it
    had uncommitted changes (a stored commit ending in "-dirty"); None for no commit."""
    if not commit:
        return None
    head = commit.removesuffix("-dirty")
    return head[:digits] + (dirty if head != commit else "")


@dataclass(frozen=True)
class StoredRun:
    # the first 32 hex digits of the sha256 of the report that records the run (its
    # bench-summary.json, a plan's plan.json: from_report.run_uuid): the same report stored
    # twice is one run, never duplicated
    uuid: str
    created: str  # ISO 8601 UTC, the report's "created"
    kind: str  # one of KINDS
    commit: str | None  # git commit (may end in "-dirty"), None outside a checkout
    branch: str | None
    machine: str  # the report's environment_key (bench/fingerprint.py comparable_key)
    cpu_class: str  # cpu_isa class name: series never cross classes
    cpu_model: str  # "AMD EPYC", "Intel(R) Xeon(R) Processor", ...
    runtimes: dict[str, str]  # the report's environment["runtimes"]
    model_name: str  # ArtifactInfo.model_name
    model_sha256: str
    command: str | None = None  # the command line that produced it, URL passwords masked
    source: str | None = None  # the report directory it came from (import) or was written to
    run_id: int | None = None  # the store's key, set when read back

    @property
    def machine_class(self) -> str:
        """What a series never crosses, as outputs name it: the CPU class and the CPU model
        ("vnni / Intel(R) Xeon(R) Processor")."""
        return f"{self.cpu_class} / {self.cpu_model}"


@dataclass(frozen=True)
class StoredResult:
    label: str  # BenchRow.label: the configuration's name in every output
    case: dict  # Case.key(): backend, precision, batch, mode, streams, threads, quantizer, ...
    ok: bool
    images_per_s: float | None
    p50_ms: float | None
    p99_ms: float | None
    p50_ci_ms: tuple[float, float] | None  # the row's interval where it has one
    p99_ci_ms: tuple[float, float] | None
    top1_agreement: float | None
    centered_cosine: float | None
    record: dict  # the whole row, BenchRow.to_columns()
    samples_ms: list[float] | None = None  # a copy of the raw latency samples (ms), where kept
    run: StoredRun | None = None  # set when read back as part of a series


@dataclass(frozen=True)
class StoredVerdict:
    run_uuid: str
    label: str
    verdict: str  # "pass", "regression", "improvement", "noise", "insufficient"
    method: str  # e.g. "history-changepoint"
    change_commit: str | None = None  # where a detected step came in
    detail: dict = field(default_factory=dict)
