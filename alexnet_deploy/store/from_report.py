"""Stored runs made from what the commands write: a bench report directory (``bench``, ``tune``,
``gate --run``, or one imported: bench-summary.json and, where present, bench-samples.parquet)
and a plan's timings; and the ``--store`` option's value resolved to a store.

A report's rows become typed records (``BenchRow.from_columns``) and its raw samples are
grouped by configuration (``Case.from_row``: a column an older report lacks reads as its
default); a report of another schema, or one whose JSON, rows or samples cannot be read, is
refused with one line. A run's uuid is the report's content (the sha256 of its bench-summary.json):
a report stored twice, by ``bench --store`` and again by ``store import``, is stored once, never
counted twice. The command line a report recorded is stored with every URL password masked
(reports written before bench masked it may hold one).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from alexnet_deploy.errors import AlexnetDeployError
from alexnet_deploy.passwords import masked
from alexnet_deploy.store.records import KINDS, StoredResult, StoredRun
from alexnet_deploy.store.rows import utc_iso

DEFAULT_STORE = "default"  # --store default: WORK_DIR/results.sqlite


def store_spec(value: str | None, work_dir: Path) -> str | None:
    """``--store``'s value as a store to open: None (not given), a path or URL as given, or
    ``default``: the work directory's embedded store."""
    from alexnet_deploy.artifacts import WorkDir

    if value is None:
        return None
    if value.strip() == "":
        from alexnet_deploy.errors import UsageError

        raise UsageError(
            "--store is empty",
            hint=f"pass a file, a postgresql:// URL, or '{DEFAULT_STORE}' "
            "(WORK_DIR/results.sqlite)",
        )
    return str(WorkDir(work_dir).results_store) if value == DEFAULT_STORE else value


def report_dirs(path: Path) -> list[Path]:
    """A report directory, or every report directory under ``path`` (name order)."""
    from alexnet_deploy.bench.report import REPORT_FILES

    summary = REPORT_FILES["json"]
    path = Path(path)
    if (path / summary).is_file() or path.name == summary:
        return [path]
    found = sorted(p.parent for p in path.rglob(summary)) if path.is_dir() else []
    return found or [path]  # none: the one path, refused by run_from_report with why


def run_from_report(
    report_dir: Path, *, kind: str = "import", branch: str | None = None
) -> tuple[StoredRun, list[StoredResult]]:
    """A bench report directory (or its bench-summary.json) as a stored run and its results:
    every row (ok and failed) as its typed record, with its raw samples where the report kept
    them. ``branch``: given, or the checkout's branch when the report was made at this
    checkout's commit, else None."""
    from alexnet_deploy.bench.report import REPORT_FILES

    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} is not one of {KINDS}")
    report_dir = Path(report_dir)
    name = REPORT_FILES["json"]
    summary = report_dir if report_dir.name == name else report_dir / name
    if not summary.is_file():
        raise AlexnetDeployError(
            f"{report_dir} holds no {name}: not a bench report directory",
            hint="pass a directory 'alexnet-deploy bench' wrote (--out), or a directory of them",
        )
    content = summary.read_bytes()
    data, rows = _read_summary(summary, content)
    samples = _read_samples(summary.with_name(REPORT_FILES["parquet"]))
    env = data.get("environment") or {}
    model = data.get("model") or {}
    commit = env.get("git_commit")
    run = StoredRun(
        uuid=run_uuid(content),
        created=utc_iso(data.get("created") or ""),
        kind=kind,
        commit=commit,
        branch=branch or checkout_branch(commit),
        machine=data.get("environment_key") or "unknown",
        cpu_class=cpu_class_of(env),
        cpu_model=env.get("cpu") or "unknown",
        runtimes=dict(env.get("runtimes") or {}),
        model_name=_model_name(model),
        model_sha256=model.get("sha256") or "unknown",
        command=None if data.get("command") is None else masked(str(data["command"])),
        source=str(summary.parent.resolve()),
    )
    results = [_result(row, samples.get(row.case) if row.ok else None) for row in rows]
    return run, results


def run_uuid(content: bytes) -> str:
    """A run's id: the first 32 hex digits of the sha256 of the file that records it (its
    bench-summary.json, a plan's plan.json): the same report is the same run."""
    return hashlib.sha256(content).hexdigest()[:32]


def source_changed(run: StoredRun) -> str:
    """What became of the directory a stored run came from: "" (it still holds that run),
    "overwritten since" (it holds another run now) or "gone since"."""
    from alexnet_deploy.bench.report import REPORT_FILES
    from alexnet_deploy.precision.planner import REPORT_FILES as PLAN_FILES

    if not run.source:
        return ""
    recorded = Path(run.source) / (PLAN_FILES[0] if run.kind == "plan" else REPORT_FILES["json"])
    try:
        content = recorded.read_bytes()
    except OSError:
        return "gone since"
    return "" if run_uuid(content) == run.uuid else "overwritten since"


def _corrupt(path: Path, why: str) -> AlexnetDeployError:
    return AlexnetDeployError(
        f"report {path} is corrupt ({why})", hint="re-run 'alexnet-deploy bench' for this report"
    )


def _read_summary(path: Path, content: bytes) -> tuple[dict, list]:
    """The report's JSON and its rows as typed records; another schema or a bad row refused."""
    from alexnet_deploy.bench.records import BenchRow
    from alexnet_deploy.bench.report import SCHEMA

    try:
        data = json.loads(content)
    except ValueError as err:
        raise _corrupt(path, f"not JSON: {err}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        schema = data.get("schema") if isinstance(data, dict) else None
        raise AlexnetDeployError(
            f"{path} has schema {schema!r}, not a bench report's {SCHEMA!r}",
            hint="store bench reports (bench-summary.json with its samples)",
        )
    try:
        return data, [BenchRow.from_columns(columns) for columns in data.get("rows", [])]
    except (KeyError, TypeError, AttributeError, ValueError) as err:
        raise _corrupt(path, f"a row: {type(err).__name__} {err}") from None


def _read_samples(path: Path) -> dict:
    """Each configuration's raw samples in milliseconds, every round in the order measured
    (none where the report kept no samples file)."""
    import polars as pl

    from alexnet_deploy.cases import KEY_COLUMNS, Case

    if not path.is_file():
        return {}
    try:
        frame = pl.read_parquet(path)
    except Exception as err:  # polars raises its own errors for truncated or foreign files
        raise _corrupt(path, f"{type(err).__name__}: its raw samples cannot be read") from None
    columns = [c for c in KEY_COLUMNS if c in frame.columns]
    if not frame.height or "latency_ns" not in frame.columns or not columns:
        return {}
    return {
        Case.from_row(dict(zip(columns, key, strict=True))): part["latency_ns"].to_numpy() / 1e6
        for key, part in frame.partition_by(columns, as_dict=True, maintain_order=True).items()
    }


def _result(row, samples_ms: np.ndarray | None) -> StoredResult:
    from alexnet_deploy.bench.stats import quantile_ci

    latency = row.latency
    return StoredResult(
        label=row.label,
        case=row.case.key(),
        ok=row.ok,
        images_per_s=row.images_per_s,
        p50_ms=row.p50_ms,
        p99_ms=row.p99_ms,
        p50_ci_ms=None if latency is None else (latency.p50_ci_low, latency.p50_ci_high),
        # the report keeps no p99 interval: it is the same order-statistic interval, from the
        # raw samples, where the report has them
        p99_ci_ms=None if samples_ms is None else quantile_ci(samples_ms, 0.99),
        top1_agreement=row.top1_agreement,
        centered_cosine=None if row.fidelity is None else row.fidelity.centered_cosine,
        record=row.to_columns(),
        samples_ms=None if samples_ms is None else [float(v) for v in samples_ms],
    )


def cpu_class_of(env: dict) -> str:
    """A report's CPU class (cpu_isa.py): recorded since reports carry ``cpu_isa``; for an
    older report, classified again from the features it recorded; else "unknown"."""
    if env.get("cpu_isa"):
        return env["cpu_isa"]
    features = env.get("cpu_features") or {}
    if not features:
        return "unknown"
    from alexnet_deploy.cpu_isa import classify
    from alexnet_deploy.sysinfo import CPU_FEATURES

    flags = {
        CPU_FEATURES[name] for name, present in features.items() if present and name in CPU_FEATURES
    }
    # the report names one flag of each family: AVX-512 implies its BW part on every CPU
    # these reports come from, and AMX tiles imply the int8 ones
    flags |= {"avx512bw"} if "avx512f" in flags else set()
    flags |= {"amx_int8"} if "amx_tile" in flags else set()
    machine = next(
        (m for m in ("x86_64", "aarch64", "arm64") if m in str(env.get("os", ""))), "x86_64"
    )
    return classify(flags, machine).name


def _model_name(model: dict) -> str:
    """The report's model name; for a report from before reports named it, the name
    ArtifactInfo.model_name gives a built-in export (alexnet-VARIANT), else the file's stem."""
    if model.get("name"):
        return model["name"]
    if model.get("variant"):
        return f"alexnet-{model['variant']}"
    from alexnet_deploy.artifacts import stem_of

    return stem_of(Path(model["path"])) if model.get("path") else "unknown"


def checkout_branch(commit: str | None) -> str | None:
    """This checkout's branch, when ``commit`` is this checkout's (a report made here now)."""
    from alexnet_deploy.bench.fingerprint import git_branch, git_commit

    here = git_commit()
    if commit is None or here is None:
        return None
    if commit.removesuffix("-dirty") != here.removesuffix("-dirty"):
        return None
    return git_branch()
