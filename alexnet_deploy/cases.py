"""A benchmark configuration (a case): the key every bench row, raw sample, report line and gate
verdict is filed under, its columns, and its one label.

Reports keep their schema: a row's key columns are ``KEY_COLUMNS``; a row from before the INT8
route was recorded ran the tool's own Q/DQ route, so a missing ``quantizer`` reads as "qdq".
"""

from __future__ import annotations

from dataclasses import dataclass, replace

KEY_COLUMNS = ("backend", "precision", "quantizer", "batch", "mode", "threads", "streams")


@dataclass(frozen=True)
class Case:
    backend: str
    precision: str
    batch: int
    mode: str
    threads: int | None = None
    streams: int | None = None
    quantizer: str = "qdq"  # INT8 route; "qdq" for every other precision

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
        )

    @property
    def concurrency(self) -> int:
        return 1 if self.mode == "latency" else (self.streams or 2)

    def key(self) -> dict:
        """The key columns and their values, as a report row holds them."""
        return {column: getattr(self, column) for column in KEY_COLUMNS}

    @property
    def label(self) -> str:
        """'ort int8 (nncf) b32 latency t2 s4': how every table, plot and verdict names it."""
        route = " (nncf)" if self.quantizer == "nncf" else ""
        extra = (f" t{self.threads}" if self.threads else "") + (
            f" s{self.streams}" if self.streams else ""
        )
        return f"{self.backend} {self.precision}{route} b{self.batch} {self.mode}{extra}"

    def sort_key(self) -> tuple:
        return tuple(str(getattr(self, column)) for column in KEY_COLUMNS)

    def but(self, **changes) -> Case:
        """This case with some fields changed (the FP32 case beside an INT8 one, say)."""
        return replace(self, **changes)
