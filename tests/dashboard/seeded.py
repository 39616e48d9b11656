"""A history made from one real bench report (docs/benchmarks/...): seeded copies of it, each
as if measured at one commit of a line, with a little run-to-run jitter and, from a chosen
commit on, a step change in speed. Every throughput column is multiplied by the run's factor
for that configuration and every latency (the report's ``*_ms`` columns and each raw sample in
``bench-samples.parquet``) divided by it, so the summary and its samples agree. Used by the
dashboard tests and ``scripts/dashboard-demo`` (which stores the copies with ``store import``).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
MAIN_REPORT = ROOT / "docs" / "benchmarks" / "main"
# the throughput columns of a report row (bench/records.py's BenchRow.to_columns)
THROUGHPUT = ("images_per_s", "inferences_per_s", "gflops", "weight_gbs", "pct_compute_peak",
              "pct_bandwidth")  # fmt: skip


@dataclass(frozen=True)
class SeededLine:
    """The history to make: ``commits`` oldest first, a step of ``step`` (0.85: 15% slower)
    from ``commits[step_at]`` on, and a seeded jitter of ``jitter`` (relative sd) per run and
    configuration."""

    commits: tuple[str, ...]
    step_at: int
    step: float = 0.85
    jitter: float = 0.02
    seed: int = 0
    start: str = "2026-12-01T09:00:00+00:00"
    labels: tuple[str, ...] | None = None  # keep only these configurations (None: every one)


def synthetic_commits(count: int) -> tuple[str, ...]:
    """``count`` made-up 40-hex commits, oldest first, each distinct in its first 7 digits (the
    dashboard's axis): the tests' line, which needs no git history (a shallow clone has one
    commit)."""
    import hashlib

    return tuple(hashlib.sha1(f"seeded commit {i}".encode()).hexdigest() for i in range(count))


def line_commits(count: int) -> tuple[str, ...]:
    """This repository's last ``count`` commits, oldest first (git log): scripts/dashboard-demo's
    line, so its screenshots name real commits."""
    import subprocess

    out = subprocess.run(
        ["git", "log", "--format=%H", "-n", str(count)], cwd=ROOT, capture_output=True,
        text=True, check=True,
    )  # fmt: skip
    commits = tuple(reversed(out.stdout.split()))
    if len(commits) < count:
        raise RuntimeError(f"this checkout has {len(commits)} commits; {count} are needed")
    return commits


def _key(row: dict) -> tuple:
    return tuple(str(row.get(c)) for c in ("backend", "precision", "batch", "mode", "threads",
                                          "streams", "quantizer"))  # fmt: skip


def _label(row: dict) -> str:
    from alexnet_deploy.bench.records import BenchRow

    return BenchRow.from_columns(row).label


def seeded_report(source: Path, target: Path, *, commit: str, created: str, factors: dict) -> Path:
    """A copy of the report ``source`` at ``target``, as measured at ``commit`` at ``created``,
    holding the rows whose key is in ``factors``, each row's speed multiplied by its factor."""
    import polars as pl

    shutil.copytree(source, target)
    summary = json.loads((source / "bench-summary.json").read_text())
    summary["created"] = created
    summary["environment"]["git_commit"] = commit
    summary["rows"] = [row for row in summary["rows"] if _key(row) in factors]
    for row in summary["rows"]:
        factor = factors[_key(row)]
        for name, value in list(row.items()):
            if value is None or isinstance(value, bool):
                continue
            if name in THROUGHPUT and isinstance(value, float | int):
                row[name] = value * factor
            elif name == "round_images_per_s" and isinstance(value, list):
                row[name] = [v * factor for v in value]
            elif name.endswith("_ms") and isinstance(value, float | int):
                row[name] = value / factor
    (target / "bench-summary.json").write_text(json.dumps(summary, indent=2))
    samples = source / "bench-samples.parquet"
    if samples.is_file():
        frame = pl.read_parquet(samples)
        keys = [_key(r) for r in frame.iter_rows(named=True)]
        kept = np.array([k in factors for k in keys])
        frame, keys = frame.filter(pl.Series(kept)), [k for k in keys if k in factors]
        scale = np.array([factors[k] for k in keys])
        latency = (frame["latency_ns"].to_numpy() / scale).round().astype(np.int64)
        frame.with_columns(pl.Series("latency_ns", latency)).write_parquet(
            target / "bench-samples.parquet"
        )
    return target


def seeded_reports(line: SeededLine, out: Path, source: Path = MAIN_REPORT) -> list[Path]:
    """One report directory per commit of ``line`` under ``out`` (``NN-SHORTSHA``), a day
    apart, oldest first."""
    summary = json.loads((source / "bench-summary.json").read_text())
    keys = sorted(
        {_key(row) for row in summary["rows"] if line.labels is None or _label(row) in line.labels}
    )
    if not keys:
        raise ValueError(f"{source} holds none of the configurations {line.labels}")
    rng = np.random.default_rng(line.seed)
    start = datetime.fromisoformat(line.start)
    reports = []
    for number, commit in enumerate(line.commits):
        level = line.step if number >= line.step_at else 1.0
        factors = {k: level * float(np.exp(rng.normal(0.0, line.jitter))) for k in keys}
        created = (start + timedelta(days=number)).isoformat(timespec="seconds")
        target = out / f"{number:02d}-{commit[:7]}"
        reports.append(
            seeded_report(source, target, commit=commit, created=created, factors=factors)
        )
    return reports
