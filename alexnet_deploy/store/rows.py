"""Records to rows and back: a ``StoredRun``/``StoredResult`` as the values of a row of
store/schema.py's tables, and a row read back as the record; JSON text with sorted keys, floats
only finite (SQLite keeps NaN as NULL: both back ends then hold the same), times in UTC."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

from alexnet_deploy.errors import AlexnetDeployError
from alexnet_deploy.store.records import StoredResult, StoredRun


def to_json(value) -> str:
    return json.dumps(value, sort_keys=True)


def finite(value) -> float | None:
    """A finite float, or None (SQLite stores NaN as NULL; both back ends hold None alike)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def utc_iso(text: str) -> str:
    """An ISO 8601 time as UTC text (``2026-11-29T12:10:50+00:00``): every stored time in one
    offset, so the text sorts in time order. A time without an offset is taken as UTC."""
    try:
        when = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        try:
            when = datetime.strptime(str(text), "%Y-%m-%dT%H:%M:%S%z")
        except ValueError:
            raise AlexnetDeployError(
                f"time {text!r} is not ISO 8601",
                hint="a run's created time looks like 2026-11-29T12:10:50+00:00",
            ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat(timespec="seconds")


def run_values(run: StoredRun) -> dict:
    return {
        "uuid": run.uuid,
        "created": utc_iso(run.created),
        "kind": run.kind,
        "git_commit": run.commit,
        "branch": run.branch,
        "machine": run.machine,
        "cpu_class": run.cpu_class,
        "cpu_model": run.cpu_model,
        "runtimes": to_json(run.runtimes),
        "model_name": run.model_name,
        "model_sha256": run.model_sha256,
        "command": run.command,
        "source": run.source,
    }


def run_from_row(row) -> StoredRun:
    return StoredRun(
        uuid=row.uuid,
        created=row.created,
        kind=row.kind,
        commit=row.git_commit,
        branch=row.branch,
        machine=row.machine,
        cpu_class=row.cpu_class,
        cpu_model=row.cpu_model,
        runtimes=json.loads(row.runtimes),
        model_name=row.model_name,
        model_sha256=row.model_sha256,
        command=row.command,
        source=row.source,
        run_id=row.run_id,
    )


def _interval(pair) -> tuple[float | None, float | None]:
    return (None, None) if pair is None else (finite(pair[0]), finite(pair[1]))


def result_values(result: StoredResult, run_id: int, position: int) -> dict:
    p50_low, p50_high = _interval(result.p50_ci_ms)
    p99_low, p99_high = _interval(result.p99_ci_ms)
    return {
        "run_id": run_id,
        "position": position,
        "label": result.label,
        "case_key": to_json(result.case),
        "ok": bool(result.ok),
        "images_per_s": finite(result.images_per_s),
        "p50_ms": finite(result.p50_ms),
        "p50_ci_low_ms": p50_low,
        "p50_ci_high_ms": p50_high,
        "p99_ms": finite(result.p99_ms),
        "p99_ci_low_ms": p99_low,
        "p99_ci_high_ms": p99_high,
        "top1_agreement": finite(result.top1_agreement),
        "centered_cosine": finite(result.centered_cosine),
        "record": to_json(result.record),
        "samples_ms": None if result.samples_ms is None else to_json(list(result.samples_ms)),
    }


def _pair(low, high) -> tuple[float, float] | None:
    return None if low is None or high is None else (low, high)


def result_from_row(row, run: StoredRun | None) -> StoredResult:
    return StoredResult(
        label=row.label,
        case=json.loads(row.case_key),
        ok=bool(row.ok),
        images_per_s=row.images_per_s,
        p50_ms=row.p50_ms,
        p99_ms=row.p99_ms,
        p50_ci_ms=_pair(row.p50_ci_low_ms, row.p50_ci_high_ms),
        p99_ci_ms=_pair(row.p99_ci_low_ms, row.p99_ci_high_ms),
        top1_agreement=row.top1_agreement,
        centered_cosine=row.centered_cosine,
        record=json.loads(row.record),
        samples_ms=None if row.samples_ms is None else json.loads(row.samples_ms),
        run=run,
    )
