"""Baselines: accepting the current results atomically, and what re-benching a baseline's
configurations now means (``gate --run``; the orchestration layer runs it)."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from alexnet_deploy import constants as C
from alexnet_deploy.bench.config import BenchConfig, Matrix, MeasureRules
from alexnet_deploy.bench.report import REPORT_FILES
from alexnet_deploy.errors import AlexnetDeployError
from alexnet_deploy.fileio import replace_directory, staging_directory, write_json_atomic
from alexnet_deploy.gate.ratios import ratio_baseline
from alexnet_deploy.gate.reports import RATIO_SCHEMA, SAMPLES, SUMMARY, LoadedReport
from alexnet_deploy.gate.spread import NOISE_FILE
from alexnet_deploy.outputs import OutputDir, mark_directory


def is_ratio_baseline(path: Path) -> bool:
    """``path`` is a ratio-baseline file (by its schema), told before anything is loaded."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("schema") == RATIO_SCHEMA


def baseline_output(baseline: Path, ratio_mode: bool) -> Path | OutputDir:
    """What accepting a baseline writes: a ratio-baseline file, or the report directory it
    replaces whole (the tool's own: its marker, or only a report's files from before markers)."""
    if ratio_mode:
        return baseline if baseline.suffix == ".json" else baseline / "ratio-baseline.json"
    target = baseline if baseline.is_dir() or baseline.suffix != ".json" else baseline.parent
    legacy = (*REPORT_FILES.values(), NOISE_FILE)
    return OutputDir(target, replaced=True, legacy=legacy)


def accept_baseline(baseline: Path, current: LoadedReport, ratio_mode: bool) -> Path:
    """Make ``current`` the baseline: a ratio-baseline file in ratio mode, else the report's
    files copied to a staging directory and renamed over the baseline directory."""
    target = baseline_output(baseline, ratio_mode)
    if not isinstance(target, OutputDir):
        return write_json_atomic(target, ratio_baseline(current))
    source = current.paths[0].parent
    staging = staging_directory(target.path)
    try:
        for name in (SUMMARY, SAMPLES):
            if (source / name).is_file():
                shutil.copy2(source / name, staging / name)
        mark_directory(staging, "gate --update-baseline", complete=True)
        return replace_directory(staging, target.path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


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
        statics=unique("static"),
        float_precisions=unique("float_precision"),
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
