"""A real results store (SQLite) holding 12 runs: seeded copies of docs/benchmarks/main on a
line of 12 made-up commits (no git history needed: a shallow clone has one commit), 15% slower
from the 8th on, stored through the store's own report reader; and gate verdicts on one
configuration, stored through the store's API."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.dashboard.seeded import SeededLine, seeded_reports, synthetic_commits

STEP_AT = 7  # the injected step comes in at the 8th commit
JUDGED = "ort fp32 b1 latency"  # the configuration the stored verdicts judge


@dataclass(frozen=True)
class SeededStore:
    path: Path
    line: SeededLine
    run_uuids: tuple[str, ...]  # oldest first

    @property
    def step_commit(self) -> str:
        return self.line.commits[self.line.step_at]


def store_reports(store_path: Path, reports: list[Path]) -> list[str]:
    from alexnet_deploy.store.db import open_store
    from alexnet_deploy.store.from_report import run_from_report

    uuids = []
    with open_store(store_path) as store:
        for report in reports:
            run, results = run_from_report(report, branch="main")
            store.add_run(run, results)
            uuids.append(run.uuid)
    return uuids


def make_store(root: Path, line: SeededLine) -> SeededStore:
    """The seeded reports of ``line`` stored in ROOT/results.sqlite (then removed), with three
    gate verdicts on JUDGED: pass, regression at the step (naming its commit), pass."""
    from alexnet_deploy.store.db import open_store
    from alexnet_deploy.store.records import StoredVerdict

    reports = seeded_reports(line, root / "reports")
    path = root / "results.sqlite"
    uuids = store_reports(path, reports)
    shutil.rmtree(root / "reports")
    at = line.step_at
    verdicts = [
        StoredVerdict(uuids[at - 2], JUDGED, "pass", "history-changepoint"),
        StoredVerdict(uuids[at], JUDGED, "regression", "history-changepoint",
                      change_commit=line.commits[at]),  # fmt: skip
        StoredVerdict(uuids[-1], JUDGED, "pass", "history-changepoint"),
    ]
    with open_store(path) as store:
        store.add_verdicts(verdicts)
    return SeededStore(path, line, tuple(uuids))


@pytest.fixture(scope="session")
def seeded_store(tmp_path_factory) -> SeededStore:
    """12 runs of all 26 configurations of docs/benchmarks/main, the step at the 8th."""
    line = SeededLine(synthetic_commits(12), STEP_AT)
    return make_store(tmp_path_factory.mktemp("seeded-store"), line)


@pytest.fixture(scope="session")
def small_store(tmp_path_factory) -> SeededStore:
    """10 runs of three configurations (JUDGED among them), the step at the 7th: a site of
    four pages, which a browser opens in seconds (each page parses Plotly's 4.8 MB script)."""
    labels = (JUDGED, "ort int8 b32 latency", "openvino fp16 b1 latency")
    line = SeededLine(synthetic_commits(10), step_at=6, labels=labels)
    return make_store(tmp_path_factory.mktemp("small-store"), line)
