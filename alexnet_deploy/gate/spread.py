"""Run-to-run spread: how far separate runs of the same configuration on the same machine
drift apart, and the thresholds a history gate must use because of it.

The bootstrap interval of one comparison sees only the noise *within* each run; separate runs
(other processes, other minutes) also differ by the machine's state (measured here: up to 20%
for p50 between two runs of one engine, docs/gate-evaluation-unpaired.md). So an unpaired gate
whose threshold is below that raises false alarms, whatever its interval says. The spread comes
from runs of the same configuration:

* a history of one report: ``gate BASELINE --measure-noise N`` benches the baseline's
  configurations N more times as separate runs and stores their spread beside it
  (``gate-noise.json``); later gates against that baseline use it;
* a history directory: its past reports are such runs already.

A configuration's threshold is then ``NOISE_SAFETY_FACTOR`` x the largest change between two of
those runs, never below the one asked for (as scripts/gate-evaluation derives paired thresholds
from the largest A/A change). scripts/gate-evaluation-unpaired measures what the rule achieves.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alexnet_deploy import constants as C
from alexnet_deploy.cases import Case
from alexnet_deploy.errors import UsageError

NOISE_FILE = "gate-noise.json"
NOISE_SCHEMA = "alexnet-deploy/gate-noise/1"


def run_statistics(samples: list[np.ndarray]) -> dict[str, float]:
    """One run's statistics the spread is taken over: p50 and mean latency (ns)."""
    flat = np.concatenate([np.asarray(s, dtype=np.float64) for s in samples])
    return {"p50": float(np.median(flat)), "throughput": float(np.mean(flat))}


def spread_of(values: list[float]) -> float:
    """The largest change between two of the runs (slowest over fastest, minus 1): what a gate
    comparing two of them would have seen with no change in the code."""
    return max(values) / min(values) - 1 if min(values) > 0 else 0.0


@dataclass
class Spread:
    """Per configuration label and metric: the spread, over ``runs`` separate runs."""

    runs: int
    source: str  # where it came from, said in the gate's notes
    by_config: dict[str, dict[str, float]]

    def threshold(self, config: str, metric: str, asked: float) -> float | None:
        """The threshold this configuration and metric must use, or None where the spread
        does not speak of it."""
        value = self.by_config.get(config, {}).get(metric)
        if value is None:
            return None
        return max(asked, C.NOISE_SAFETY_FACTOR * value)


def spread_of_runs(runs: list[dict[Case, list[np.ndarray]]], source: str) -> Spread:
    """The spread of several separate runs (each: samples per configuration)."""
    labels: dict[str, dict[str, list[float]]] = {}
    for run in runs:
        for case, samples in run.items():
            if not samples:
                continue
            for metric, value in run_statistics(samples).items():
                labels.setdefault(case.label, {}).setdefault(metric, []).append(value)
    by_config = {
        label: {metric: spread_of(values) for metric, values in metrics.items() if len(values) > 1}
        for label, metrics in labels.items()
    }
    return Spread(len(runs), source, {k: v for k, v in by_config.items() if v})


def write_noise_record(baseline_dir: Path, spread: Spread, machine: str) -> Path:
    from alexnet_deploy.fileio import write_json_atomic

    return write_json_atomic(
        Path(baseline_dir) / NOISE_FILE,
        {
            "schema": NOISE_SCHEMA,
            "runs": spread.runs,
            "machine": machine,
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "safety_factor": C.NOISE_SAFETY_FACTOR,
            "spread": spread.by_config,
        },
    )


def read_noise_record(report_dir: Path) -> Spread | None:
    """The spread stored with a baseline, or None when it has none."""
    import json

    path = Path(report_dir) / NOISE_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except ValueError as err:
        raise UsageError(
            f"{path} is corrupt (not JSON: {err})",
            hint="measure it again: alexnet-deploy gate BASELINE --measure-noise 3",
        ) from None
    if not isinstance(data, dict) or data.get("schema") != NOISE_SCHEMA:
        raise UsageError(
            f"{path} is not a noise record of this version (schema {NOISE_SCHEMA!r})",
            hint="measure it again: alexnet-deploy gate BASELINE --measure-noise 3",
        )
    return Spread(
        int(data["runs"]),
        f"{data['runs']} separate runs measured {data.get('measured_at', '')[:10]} ({NOISE_FILE})",
        data["spread"],
    )


def baseline_spread(baseline) -> Spread | None:
    """The spread a history gate's thresholds come from: its past reports' when it has two or
    more, else the one measured beside its one report (``--measure-noise``); None when there is
    neither (the defaults measured for separate runs apply: Thresholds.for_separate_runs)."""
    if len(baseline.runs) > 1:
        return spread_of_runs(baseline.runs, f"the {len(baseline.runs)} reports of the history")
    if len(baseline.paths) == 1:
        return read_noise_record(baseline.paths[0].parent)
    return None


def measure_run_noise(
    baseline, runs: int, work_dir: Path, rerun: Callable[[Path], Path], progress=lambda m: None
) -> tuple[Spread, Path]:
    """``gate BASELINE --measure-noise RUNS``: ``rerun(out)`` benches the loaded baseline's
    configurations into ``out`` (a fresh run each time), ``runs`` times; their spread with the
    baseline's own run is stored beside it. Returns the spread and the file."""
    import tempfile

    from alexnet_deploy.gate.reports import load_report
    from alexnet_deploy.sysinfo import cpu_info

    if baseline.is_history or baseline.ratios:
        raise UsageError(
            "--measure-noise takes one bench report as BASELINE",
            hint="a history directory measures its spread from its own reports",
        )
    measured = [baseline.runs[0]]
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work_dir, prefix="noise-runs-") as scratch:
        for i in range(runs):
            progress(f"separate run {i + 1}/{runs}")
            measured.append(load_report(rerun(Path(scratch) / f"run-{i}")).runs[0])
    spread = spread_of_runs(measured, f"{len(measured)} separate runs")
    cpu = cpu_info()
    machine = f"{cpu['model']}, {cpu['logical_cores']} logical cores"
    return spread, write_noise_record(baseline.paths[0].parent, spread, machine)
