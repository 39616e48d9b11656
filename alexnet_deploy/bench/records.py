"""The typed records a measurement travels as, from the timing loop to the gate (STYLE.md rule
16, after pyperf's ``Benchmark``/``Run``): a ``BenchRow`` per configuration, keyed by its
``Case``, with typed latency statistics (bench/stats.py's ``LatencyStats``, in milliseconds),
throughput, rounds, ``Fidelity``, ``Roofline``, the row's ``Stability`` verdict, ``EngineInfo``
and, in server mode, a ``ServerResult``; a ``BenchResult`` holds a run's rows and raw samples
(``RoundSamples``). Every module between the loop and the reports passes these.

Plain frozen dataclasses, not msgspec or pydantic: no new dependency; a row is made in one
place (bench/run.py) from values already typed, and read back in one (``from_columns``, which
must also read reports of earlier versions, with columns missing or since dropped); the
serialization itself is json's and polars' at the report edge (bench/report.py writing,
gate/reports.py reading), so a schema library would be a second description of the same columns.

The report edge: ``to_columns()`` gives the row as bench-summary.json has always held it
(docs/bench-report.md; the same keys, in the same order, a measurement's group left out where
the row has none), ``from_columns()`` turns such a row back into a record. A column a record
does not know (``noisy``, from before the stability verdict) is dropped on reading.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np

from alexnet_deploy.bench.stats import LatencyStats, Stability, stability
from alexnet_deploy.cases import Case


def _emit(record, names: Mapping[str, str]) -> dict:
    """A sub-record's columns (field -> column name), a field it does not have (None) left out."""
    if record is None:
        return {}
    values = {column: getattr(record, name) for name, column in names.items()}
    return {column: value for column, value in values.items() if value is not None}


def _pick(cls, columns: Mapping, names: Mapping[str, str]):
    """The sub-record a report row holds, or None when it holds none of its columns."""
    found = {name: columns[column] for name, column in names.items() if column in columns}
    return cls(**found) if found else None


@dataclass(frozen=True)
class EngineInfo:
    """What ran a row (bench/targets.py says; None: not known for that target): the engine file,
    "(runtime used directly)" or the Triton model; whether it was reused and how long its build
    took; the artifact run, by content, and its weight bytes (the roofline's traffic); what the
    runtime reports it computed in (engines/computed.py: fp32, bf16, int8, ...) and whether AMX
    tiles ran (None: the runtime does not say)."""

    engine: str | None = None
    engine_reused: bool | None = None
    build_seconds: float | None = None
    artifact_sha256: str | None = None
    weight_bytes: int | None = None
    computed_in: str | None = None
    amx: bool | None = None

    COLUMNS: ClassVar[dict[str, str]] = {
        "engine": "engine",
        "engine_reused": "engine_reused",
        "build_seconds": "build_seconds",
        "artifact_sha256": "artifact_sha256",
        "weight_bytes": "weight_bytes",
        "computed_in": "computed_in",
        "amx": "amx",
    }

    def with_computed(self, computed) -> EngineInfo:
        """This record with what the runtime read back (an engines.computed.Computed, or None)."""
        if computed is None:
            return self
        return replace(self, computed_in=computed.precision, amx=computed.amx)


@dataclass(frozen=True)
class Fidelity:
    """A row's agreement with FP32 on the fixed fidelity images, as its engine executed it on
    this CPU (``basis`` "as-executed"), and, for FP16 and INT8 artifacts, as the file means it
    (``emulated_top1_agreement``: the same on every CPU). Reports from before a field existed
    leave it None."""

    top1_agreement: float | None = None
    centered_cosine: float | None = None
    samples: int | None = None
    source: str | None = None
    basis: str | None = None
    emulated_top1_agreement: float | None = None

    COLUMNS: ClassVar[dict[str, str]] = {
        "top1_agreement": "top1_agreement",
        "centered_cosine": "centered_cosine",
        "samples": "fidelity_samples",
        "source": "fidelity_source",
        "basis": "fidelity_basis",
        "emulated_top1_agreement": "emulated_top1_agreement",
    }


@dataclass(frozen=True)
class Roofline:
    """Where a row stands against the machine's ceilings (bench/roofline.py)."""

    gflops: float | None = None
    pct_compute_peak: float | None = None
    weight_gbs: float | None = None
    pct_bandwidth: float | None = None
    bound: str | None = None  # "compute" or "memory"
    weights_in_llc: bool | None = None

    COLUMNS: ClassVar[dict[str, str]] = {
        "gflops": "gflops",
        "pct_compute_peak": "pct_compute_peak",
        "weight_gbs": "weight_gbs",
        "pct_bandwidth": "pct_bandwidth",
        "bound": "bound",
        "weights_in_llc": "weights_in_llc",
    }


@dataclass(frozen=True)
class ServerResult:
    """Server mode: the highest Poisson arrival rate (calls/s) whose p99 met the bound."""

    rate: float | None = None
    meets_bound: bool | None = None
    bound_ms: float | None = None

    COLUMNS: ClassVar[dict[str, str]] = {
        "rate": "server_rate",
        "meets_bound": "server_meets_bound",
        "bound_ms": "server_bound_ms",
    }


# the row's own scalar measurements, in the order a report row holds them
_OWN_COLUMNS = (
    "inferences_per_s",
    "images_per_s",
    "wall_seconds",
    "rounds",
    "round_images_per_s",
    "stop_reason",
    "macs_per_image",
)


@dataclass(frozen=True)
class BenchRow:
    """One configuration's result. ``status`` "ok", or "failed" with ``reason`` (and the
    ``traceback`` of a failure that is a bug, not a user error); a failed row has no figures."""

    case: Case
    status: str = "ok"
    reason: str = ""
    traceback: str | None = None
    latency: LatencyStats | None = None  # milliseconds, every round's samples pooled
    inferences_per_s: float | None = None  # calls, one batch each
    images_per_s: float | None = None
    wall_seconds: float | None = None
    rounds: int | None = None
    # per round, in the order the rounds ran (round-robin over the matrix): two rows compare
    # round by round, with the machine's drift shared within each round
    round_images_per_s: tuple[float, ...] | None = None
    stop_reason: str | None = None
    macs_per_image: int | None = None
    engine: EngineInfo | None = None
    fidelity: Fidelity | None = None
    repeat_p50_spread: float | None = None  # (max - min) / median of the rounds' p50s
    stability: Stability | None = None  # None: a report from before rows carried the verdict
    server: ServerResult | None = None
    roofline: Roofline | None = None
    measured_at: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def label(self) -> str:
        return self.case.label

    def percentile_ms(self, q: float) -> float | None:
        return None if self.latency is None else self.latency.percentiles.get(float(q))

    @property
    def p50_ms(self) -> float | None:
        return self.percentile_ms(50)

    @property
    def p99_ms(self) -> float | None:
        return self.percentile_ms(99)

    @property
    def top1_agreement(self) -> float | None:
        return None if self.fidelity is None else self.fidelity.top1_agreement

    @property
    def computed_in(self) -> str | None:
        """What the runtime reports it computed in (None: not reported, or an older report)."""
        return None if self.engine is None else self.engine.computed_in

    @property
    def ran_other(self) -> bool:
        """The runtime computed in another precision than the row's (OpenVINO's defaults: an
        FP32 model run in bf16): never the reference of its precision, nor compared as one."""
        return self.computed_in is not None and self.computed_in != self.case.precision

    @property
    def computed_label(self) -> str:
        """'bf16'; 'fp32 model, ran bf16' where the runtime computed in another precision than
        the row's; '' where not reported."""
        if self.computed_in is None:
            return ""
        if not self.ran_other:
            return self.computed_in
        return f"{self.case.precision} model, ran {self.computed_in}"

    @property
    def unstable(self) -> bool:
        return self.stability is not None and self.stability.unstable

    @property
    def instability(self) -> str:
        """Why the row is unstable, as recorded ("" when stable or not recorded)."""
        return "" if self.stability is None else self.stability.text

    def to_columns(self) -> dict:
        """The report row (bench-summary.json's ``rows``, the CSV's columns)."""
        columns = {**self.case.key(), "status": self.status, "reason": self.reason}
        if self.traceback is not None:
            columns["traceback"] = self.traceback
        if self.latency is not None:
            columns.update(self.latency.as_columns(unit_scale=1.0))
        for name in _OWN_COLUMNS:
            value = getattr(self, name)
            if value is not None:
                columns[name] = list(value) if name == "round_images_per_s" else value
        columns.update(_emit(self.engine, EngineInfo.COLUMNS))
        columns.update(_emit(self.fidelity, Fidelity.COLUMNS))
        if self.repeat_p50_spread is not None:
            columns["repeat_p50_spread"] = self.repeat_p50_spread
        if self.stability is not None:
            columns.update(self.stability.columns())
        columns.update(_emit(self.server, ServerResult.COLUMNS))
        columns.update(_emit(self.roofline, Roofline.COLUMNS))
        if self.measured_at is not None:
            columns["measured_at"] = self.measured_at
        return columns

    @classmethod
    def from_columns(cls, columns: Mapping) -> BenchRow:
        """A report row (of this version or an earlier one) as a record."""
        own = {name: columns[name] for name in _OWN_COLUMNS if columns.get(name) is not None}
        if "round_images_per_s" in own:
            own["round_images_per_s"] = tuple(own["round_images_per_s"])
        return cls(
            case=Case.from_row(columns),
            status=columns.get("status", "ok"),
            reason=columns.get("reason") or "",
            traceback=columns.get("traceback"),
            latency=LatencyStats.from_columns(columns),
            engine=_pick(EngineInfo, columns, EngineInfo.COLUMNS),
            fidelity=_pick(Fidelity, columns, Fidelity.COLUMNS),
            repeat_p50_spread=columns.get("repeat_p50_spread"),
            stability=Stability.from_columns(columns),
            server=_pick(ServerResult, columns, ServerResult.COLUMNS),
            roofline=_pick(Roofline, columns, Roofline.COLUMNS),
            measured_at=columns.get("measured_at"),
            **own,
        )


@dataclass(eq=False)
class RoundSamples:
    """One round's raw latency samples of one configuration, in nanoseconds, in the order
    measured (bench-samples.parquet holds one line per sample)."""

    case: Case
    repeat: int  # the round, from 0
    latency_ns: np.ndarray


@dataclass(frozen=True)
class NotMeasured:
    """A configuration the matrix was asked for and refused before any work (a precision its
    backend does not run, a batch the model's graph does not take), or a backend left out of
    the default ones, with why: printed, and listed in the report (``not_measured``)."""

    what: str  # a case's label ("ort bf16 b1 latency"), or a backend ("torch")
    reason: str

    def line(self) -> str:
        return f"{self.what}: {self.reason}"


@dataclass
class BenchResult:
    """A run's rows, one per configuration in the order they finished, its raw samples, and
    what it was asked for but did not measure."""

    rows: list[BenchRow] = field(default_factory=list)
    samples: list[RoundSamples] = field(default_factory=list)
    interrupted: bool = False
    not_measured: list[NotMeasured] = field(default_factory=list)

    @property
    def failed(self) -> list[BenchRow]:
        return [r for r in self.rows if not r.ok]

    def samples_of(self, case: Case) -> list[np.ndarray]:
        """One array per round of ``case``, as gate/reports.py reads them back."""
        return [s.latency_ns for s in self.samples if s.case == case]


@dataclass(frozen=True)
class EndToEndRow:
    """bench --end-to-end: one backend and precision (a batch-1 ``Case``: one image at a time)
    with its preprocessing in one place (``placement``), from image bytes to label."""

    case: Case
    placement: str
    images: int
    images_per_s: float
    ms_per_image: float
    stage_pct: dict[str, float]  # each stage's share of the stages' time, in stage order
    stages_over_wall_pct: float  # the stages, timed back to back, against the wall time
    top1_agrees_with_host_pct: float

    def to_columns(self) -> dict:
        """The row as end-to-end.json holds it."""
        return {
            "backend": self.case.backend,
            "precision": self.case.precision,
            "placement": self.placement,
            "images": self.images,
            "images_per_s": self.images_per_s,
            "ms_per_image": self.ms_per_image,
            **{f"{stage}_pct": share for stage, share in self.stage_pct.items()},
            "stages_over_wall_pct": self.stages_over_wall_pct,
            "top1_agrees_with_host_pct": self.top1_agrees_with_host_pct,
        }


def recorded_stability(row: BenchRow, rounds: Sequence[np.ndarray] | None) -> str:
    """A report row's instability ("" when stable): as the report recorded it, or, for a
    report written before rows carried the verdict, computed from its raw samples
    (bench/stats.py's ``stability``)."""
    if row.stability is not None:
        return row.stability.text
    if not rounds:
        return ""
    rates = row.round_images_per_s or ()
    return stability(rounds, rates, one_at_a_time=row.case.mode == "latency").text
