"""Bench reports as the gate reads them: the summary JSON, its raw samples, or a directory of
past reports pooled into one baseline. A missing, corrupt or foreign report is a usage error
(exit 2): exit 1 means "regressed", and a broken baseline must never read as a slowdown."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from alexnet_deploy.bench.records import BenchRow
from alexnet_deploy.bench.report import SCHEMA
from alexnet_deploy.cases import Case
from alexnet_deploy.errors import UsageError

SUMMARY = "bench-summary.json"
SAMPLES = "bench-samples.parquet"


@dataclass
class LoadedReport:
    paths: list[Path]
    environment_keys: set[str]
    rows: dict[Case, BenchRow] = field(default_factory=dict)
    # raw latency samples per configuration, one array per measured round (bench --repeat)
    samples: dict[Case, list[np.ndarray]] = field(default_factory=dict)
    ratios: dict[str, dict] = field(default_factory=dict)  # in-run ratio baselines only
    # ratio baselines per CPU instruction-set class (cpu_isa), where the file has them
    ratios_by_isa: dict[str, dict] = field(default_factory=dict)
    cpu_isas: set[str] = field(default_factory=set)  # of bench reports ("unknown" if older)
    # a history directory: each report's own samples (its runs, oldest first), when it was
    # made, and the reports left out with why
    runs: list[dict[Case, list[np.ndarray]]] = field(default_factory=list)
    run_names: list[str] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    # the models measured (ArtifactInfo.model_name; none for reports made before names)
    models: set[str] = field(default_factory=set)

    @property
    def is_history(self) -> bool:
        return len(self.paths) > 1


def check_same_model(baseline: LoadedReport, current: LoadedReport) -> None:
    """Two models never compare: reports (or a ratio baseline) of different models are a usage
    error (exit 2), not a regression. A report made before reports named their model names
    none, and compares as before."""
    if baseline.models and current.models and baseline.models != current.models:
        raise UsageError(
            f"the baseline measured {', '.join(sorted(baseline.models))} and the current report "
            f"{', '.join(sorted(current.models))}: different models never compare",
            hint="gate a report against a baseline of the same model (bench --model M.onnx)",
        )


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise UsageError(
            f"report {path} not found", hint="pass a bench-summary.json or its directory"
        )
    try:
        data = json.loads(path.read_text())
    except ValueError as err:
        raise UsageError(
            f"report {path} is corrupt (not JSON: {err})", hint="re-run 'alexnet-deploy bench'"
        ) from None
    if not isinstance(data, dict):
        raise UsageError(f"report {path} is corrupt (expected a JSON object)")
    schema = data.get("schema")
    if schema == RATIO_SCHEMA:
        return data
    if schema != SCHEMA:
        raise UsageError(
            f"report {path} has schema {schema!r}; this gate reads {SCHEMA!r}",
            hint="reports from before the schema was versioned cannot be compared: re-run 'alexnet-deploy bench' "
            "on the baseline commit, or accept the current run with --update-baseline",
        )
    return data


RATIO_SCHEMA = "alexnet-deploy/ratio-baseline/1"


def _summaries(path: Path) -> list[Path]:
    path = Path(path)
    if path.is_dir():
        if (path / SUMMARY).is_file():
            return [path / SUMMARY]
        found = sorted(path.glob(f"*/{SUMMARY}"))
        if not found:
            raise UsageError(
                f"no {SUMMARY} in {path} or its sub-directories", hint="pass a bench report"
            )
        return found
    return [path]


def _record(file: Path, index: int, columns) -> BenchRow:
    """A report row as a record (the report edge); a row that is not one is a corrupt report."""
    try:
        return BenchRow.from_columns(columns)
    except (KeyError, TypeError, AttributeError) as err:
        raise UsageError(
            f"report {file} is corrupt (row {index + 1}: {type(err).__name__} {err})",
            hint="re-run 'alexnet-deploy bench' for this report",
        ) from None


def load_report(path: Path, environment_key: str | None = None) -> LoadedReport:
    """One report, or every report in a directory pooled (samples concatenated per config).

    A directory of several (a history): a report that cannot be read, of another schema, or
    (given ``environment_key``) of another environment is left out and listed in ``skipped``
    rather than failing the gate; with none left, a usage error."""
    import polars as pl

    files = _summaries(path)
    history = len(files) > 1
    loaded = LoadedReport(paths=[], environment_keys=set())
    readable = []
    for file in files:
        try:
            readable.append((file, _read_json(file)))
        except UsageError as err:
            if not history:
                raise
            loaded.skipped.append((file, str(err.args[0]) if err.args else "unreadable"))
    readable.sort(key=lambda item: str(item[1].get("created", "")))  # oldest first
    for file, data in readable:
        if data.get("schema") == RATIO_SCHEMA:
            if history:
                loaded.skipped.append((file, "a ratio baseline, not a bench report"))
                continue
            loaded.paths.append(file)
            loaded.models.update([data["model"]] if data.get("model") else [])
            loaded.ratios.update(data.get("ratios", {}))
            loaded.ratios_by_isa.update(data.get("by_isa", {}))
            continue
        env_key = data.get("environment_key", "unknown")
        if history and environment_key is not None and env_key != environment_key:
            loaded.skipped.append((file, "another environment (CPU, cores or runtime versions)"))
            continue
        loaded.paths.append(file)
        loaded.environment_keys.add(env_key)
        name = (data.get("model") or {}).get("name")
        loaded.models.update([name] if name else [])
        run: dict[Case, list[np.ndarray]] = {}
        loaded.runs.append(run)
        loaded.run_names.append(f"{file.parent.name} ({str(data.get('created', ''))[:16]})")
        loaded.cpu_isas.add(data.get("environment", {}).get("cpu_isa", "unknown"))
        samples_file = file.with_name(SAMPLES)
        try:
            frame = pl.read_parquet(samples_file) if samples_file.is_file() else None
        except Exception as err:  # polars raises its own errors for truncated or foreign files
            raise UsageError(
                f"report {samples_file} is corrupt ({type(err).__name__}): its raw samples cannot be read",
                hint="re-run 'alexnet-deploy bench' for this report",
            ) from None
        for index, columns in enumerate(data.get("rows", [])):
            row = _record(file, index, columns)
            if not row.ok:
                continue
            key = row.case
            loaded.rows.setdefault(key, row)
            if frame is not None and frame.height:
                selected = frame
                for column, value in key.columns().items():
                    if column not in selected.columns:  # an older report: no quantizer column
                        continue
                    selected = selected.filter(
                        pl.col(column).is_null() if value is None else pl.col(column) == value
                    )
                if "repeat" in selected.columns:
                    rounds = [
                        part["latency_ns"].to_numpy()
                        for _, part in selected.group_by("repeat", maintain_order=True)
                    ]
                else:
                    rounds = [selected["latency_ns"].to_numpy()]
                kept = [r for r in rounds if len(r)]
                loaded.samples.setdefault(key, []).extend(kept)
                run.setdefault(key, []).extend(kept)
    if not loaded.paths:
        reasons = "; ".join(f"{f.parent.name}: {why}" for f, why in loaded.skipped[:3])
        raise UsageError(
            f"no usable report in {path} ({reasons})",
            hint="a history directory holds bench reports of this environment",
        )
    return loaded
