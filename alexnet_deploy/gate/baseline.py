"""Baselines: accepting the current results atomically, and what re-benching a baseline's
configurations now means (``gate --run``; the orchestration layer runs it)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from alexnet_deploy import constants as C
from alexnet_deploy.bench.config import BenchConfig, Matrix, MeasureRules
from alexnet_deploy.errors import AlexnetDeployError
from alexnet_deploy.fileio import staging_directory, write_json_atomic
from alexnet_deploy.gate.ratios import ratio_baseline
from alexnet_deploy.gate.reports import SAMPLES, SUMMARY, LoadedReport


def accept_baseline(baseline: Path, current: LoadedReport, ratio_mode: bool) -> Path:
    """Make ``current`` the baseline: a ratio-baseline file in ratio mode, else the report's
    files copied to a staging directory and renamed over the baseline directory."""
    if ratio_mode:
        target = baseline if baseline.suffix == ".json" else baseline / "ratio-baseline.json"
        return write_json_atomic(target, ratio_baseline(current))
    source = current.paths[0].parent
    target = baseline if baseline.is_dir() or baseline.suffix != ".json" else baseline.parent
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_directory(target)
    for name in (SUMMARY, SAMPLES):
        if (source / name).is_file():
            shutil.copy2(source / name, staging / name)
    backup = target.with_name(f".{target.name}.old")
    if target.exists():
        target.rename(backup)
    staging.rename(target)
    shutil.rmtree(backup, ignore_errors=True)
    return target


@dataclass(frozen=True)
class RerunPlan:
    model: Path
    data: str
    seed: int
    config: BenchConfig


def rerun_plan(base: LoadedReport) -> RerunPlan:
    """What ``gate --run`` benches again: the baseline's model, its fidelity images and seed,
    its rules, and a matrix of every key field of its configurations."""
    data = json.loads(base.paths[0].read_text())
    keys = list(base.rows)
    if not keys:
        raise AlexnetDeployError(f"baseline {base.paths[0]} has no successful rows to re-run")
    model = Path(data["model"]["path"])
    if not model.is_file():
        raise AlexnetDeployError(
            f"the baseline's model {model} is not on this machine",
            hint="run bench yourself and pass CURRENT",
        )
    unique = lambda field: tuple(dict.fromkeys(getattr(k, field) for k in keys))  # noqa: E731
    matrix = Matrix(  # every key field, threads and streams included
        backends=unique("backend"),
        precisions=unique("precision"),
        quantizers=unique("quantizer"),
        batches=unique("batch"),
        modes=unique("mode"),
        threads=unique("threads"),
        streams=unique("streams"),
    )
    rules = MeasureRules(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in data["config"]["rules"].items()}
    )
    return RerunPlan(
        model,
        # the same fidelity images and seed as the baseline (older reports: the defaults)
        data["model"].get("data", "shipped"),
        data["model"].get("seed", C.DEFAULT_SEED),
        BenchConfig(matrix, rules),
    )
