"""A benchmark configuration (a case): the key every bench row, raw sample, report line and gate
verdict is filed under, its columns, and its one label.

Reports keep their schema: a row's key columns are ``KEY_COLUMNS``; a row from before the INT8
route was recorded ran the tool's own Q/DQ route, so a missing ``quantizer`` reads as "qdq". The
columns added since (``LATE_COLUMNS``: a static-batch engine, an INT8 engine's float parts in
bf16) are written only where they differ from their default, and a missing one reads as that
default: a configuration measured before them keeps its key, in old reports and new.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

# columns added after reports were first keyed, with the value a row without them means
LATE_COLUMNS = {"static": False, "float_precision": None}
KEY_COLUMNS = ("backend", "precision", "quantizer", "batch", "mode", "threads", "streams")
KEY_COLUMNS += tuple(LATE_COLUMNS)


@dataclass(frozen=True)
class Case:
    backend: str
    precision: str
    batch: int
    mode: str
    threads: int | None = None
    streams: int | None = None
    quantizer: str = "qdq"  # INT8 route; "qdq" for every other precision
    static: bool = False  # the engine is compiled for exactly ``batch`` (else a 1..N range)
    float_precision: str | None = None  # INT8 only: "bf16" runs the engine's float parts in bf16

    @classmethod
    def from_row(cls, row: dict) -> Case:
        """The case a report row (or raw-sample row) was measured for."""
        return cls(
            backend=row["backend"],
            precision=row["precision"],
            batch=row["batch"],
            mode=row["mode"],
            threads=row.get("threads"),
            streams=row.get("streams"),
            quantizer=row.get("quantizer") or "qdq",
            static=bool(row.get("static") or False),
            float_precision=row.get("float_precision") or None,
        )

    @property
    def concurrency(self) -> int:
        return 1 if self.mode == "latency" else (self.streams or 2)

    def key(self) -> dict:
        """The key columns and their values, as a report row holds them (a late column only
        where it differs from its default)."""
        return {
            column: getattr(self, column)
            for column in KEY_COLUMNS
            if column not in LATE_COLUMNS or getattr(self, column) != LATE_COLUMNS[column]
        }

    def columns(self) -> dict:
        """Every key column, defaults included: the raw-sample table's columns, and what a
        reader filters those samples by."""
        return {column: getattr(self, column) for column in KEY_COLUMNS}

    @property
    def label(self) -> str:
        """'openvino int8 (nncf) +bf16 b32 static latency t2 s4': how every table, plot and
        verdict names it."""
        route = " (nncf)" if self.quantizer == "nncf" else ""
        route += f" +{self.float_precision}" if self.float_precision else ""
        shape = f"b{self.batch}" + (" static" if self.static else "")
        extra = (f" t{self.threads}" if self.threads else "") + (
            f" s{self.streams}" if self.streams else ""
        )
        return f"{self.backend} {self.precision}{route} {shape} {self.mode}{extra}"

    def sort_key(self) -> tuple:
        return tuple(str(getattr(self, column)) for column in KEY_COLUMNS)

    def but(self, **changes) -> Case:
        """This case with some fields changed (the FP32 case beside an INT8 one, say)."""
        return replace(self, **changes)
