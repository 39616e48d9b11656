"""What the dashboard shows, read from a results store: one :class:`Trend` per configuration,
machine class (CPU class and CPU model) and model (never across them: the store's series key),
holding its bench, gate and import results oldest first, the gate's verdicts on them and the
change points (and candidate steps) the gate's detector finds in them; and each trend's latest
result against the one before it (the index's row)."""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from alexnet_deploy.store.records import StoredResult, StoredRun, StoredVerdict, short_commit

if TYPE_CHECKING:
    from alexnet_deploy.gate.changepoint import ChangePoint

# The index's metrics: name -> (the result's attribute, whether a rise is better). A change
# is relative, but top-1 agreement's is in points (a fraction of the images), as the gate's
# budget is.
METRICS = {
    "images/s": ("images_per_s", True),
    "p50 ms": ("p50_ms", False),
    "p99 ms": ("p99_ms", False),
    "top-1 agreement": ("top1_agreement", True),
}
IN_POINTS = ("top-1 agreement",)


def when(created: str) -> str:
    """A stored time (ISO 8601, UTC) as a page shows it: '2026-12-01 09:00 UTC'."""
    return f"{created[:10]} {created[11:16]} UTC" if len(created) >= 16 else created


def shown_commit(commit: str | None) -> str:
    """A commit as an axis names it: 7 hex digits, '*' for uncommitted changes ('-dirty')."""
    return short_commit(commit, 7, "*") or "no commit"


def instability(result: StoredResult) -> str:
    """Why a stored row was unstable, as its record says ("" when stable or not recorded):
    bench/stats.py's one verdict on a row whose own measurements disagree."""
    from alexnet_deploy.bench.records import BenchRow

    return BenchRow.from_columns(result.record).instability if result.ok else ""


def status_text(result: StoredResult, why: str) -> str:
    """A run's status as every page names it: "ok", "unstable: WHY" (``why``: its
    :func:`instability`), or the failed row's status and reason."""
    if not result.ok:
        status = result.record.get("status") or "failed"
        reason = result.record.get("reason")
        return f"{status}: {reason}" if reason else str(status)
    return f"unstable: {why}" if why else "ok"


@dataclass(frozen=True)
class Trend:
    """One configuration on one machine class (CPU class and CPU model) and model, over the
    store's runs."""

    label: str
    cpu_class: str
    model_sha256: str
    model_name: str  # as the latest run names the model (its sha256 is what keys the trend)
    results: tuple[StoredResult, ...]  # oldest first, each with ``run`` set
    verdicts: tuple[StoredVerdict, ...]
    changes: tuple[ChangePoint, ...]
    cpu_model: str = ""
    candidates: tuple[ChangePoint, ...] = ()  # steps whose p misses alpha: shown faintly

    @property
    def machine_class(self) -> str:
        return f"{self.cpu_class} / {self.cpu_model}"

    @functools.cached_property
    def unstable(self) -> tuple[str, ...]:
        """Per result, why its row was unstable ("" when stable)."""
        return tuple(instability(result) for result in self.results)

    @functools.cached_property
    def statuses(self) -> tuple[str, ...]:
        """Per result, its status as the pages name it (:func:`status_text`)."""
        return tuple(map(status_text, self.results, self.unstable))

    @property
    def page(self) -> str:
        """The trend page's file name: readable, and unique per (label, machine class,
        model)."""
        words = re.sub(r"[^a-z0-9]+", "-", f"{self.label} {self.cpu_class}".lower()).strip("-")
        key = hashlib.sha256(
            f"{self.label}\0{self.cpu_class}\0{self.cpu_model}\0{self.model_sha256}".encode()
        ).hexdigest()
        return f"trend-{words}-{key[:8]}.html"

    @property
    def title(self) -> str:
        return f"{self.label} on {self.machine_class} ({self.model_name})"

    @property
    def runs(self) -> list[StoredRun]:
        return [result.run for result in self.results if result.run is not None]

    def position(self, run_uuid: str) -> int | None:
        """Where the run ``run_uuid`` is in this trend (the x of its point), or None."""
        for index, result in enumerate(self.results):
            if result.run is not None and result.run.uuid == run_uuid:
                return index
        return None

    @property
    def latest(self) -> StoredResult:
        return self.results[-1]

    @property
    def previous(self) -> StoredResult | None:
        """The last measured (ok) result before the latest one: what the index compares with."""
        return next((r for r in reversed(self.results[:-1]) if r.ok), None)

    def change(self, metric: str) -> float | None:
        """The latest result's change in ``metric`` (a METRICS name) from the previous one:
        relative, or in points for those IN_POINTS; None where either lacks it."""
        attribute, _ = METRICS[metric]
        now = getattr(self.latest, attribute) if self.latest.ok else None
        before = getattr(self.previous, attribute) if self.previous is not None else None
        if now is None or before is None:
            return None
        if metric in IN_POINTS:
            return 100.0 * (now - before)
        return now / before - 1.0 if before else None

    @property
    def placed_verdicts(self) -> list[tuple[int, StoredVerdict]]:
        """(position, verdict) of each verdict on a run of this trend, in run order."""
        placed = [(self.position(v.run_uuid), v) for v in self.verdicts]
        return sorted(((i, v) for i, v in placed if i is not None), key=lambda item: item[0])

    @property
    def latest_verdict(self) -> StoredVerdict | None:
        """The gate's verdict on the latest run it judged of this trend."""
        placed = self.placed_verdicts
        return placed[-1][1] if placed else None


def trends_from_store(store) -> list[Trend]:
    """Every configuration's trend in ``store`` (an open ``store.db.Store``): its bench, gate
    and import runs on one machine class, sorted by model, machine class and label; its change
    points and candidate steps from the gate's detector (``gate.changepoint.detect_changes``,
    the method ``gate --history`` judges with, in windows of C.CHANGEPOINT_WINDOW runs)."""
    from alexnet_deploy.gate.changepoint import detect_changes

    trends = []
    for key in store.configurations():
        series = store.series(key.label, key.cpu_class, key.model_sha256, cpu_model=key.cpu_model)
        if not series:
            continue
        found = detect_changes(series, candidates=True)
        trends.append(
            Trend(
                label=key.label,
                cpu_class=key.cpu_class,
                model_sha256=key.model_sha256,
                model_name=key.model_name,
                results=tuple(series),
                verdicts=tuple(
                    store.verdicts(
                        key.label, key.cpu_class, key.model_sha256, cpu_model=key.cpu_model
                    )
                ),
                changes=tuple(c for c in found if not c.candidate),
                cpu_model=key.cpu_model,
                candidates=tuple(c for c in found if c.candidate),
            )
        )
    return sorted(
        trends, key=lambda t: (t.model_name, t.model_sha256, t.cpu_class, t.cpu_model, t.label)
    )
