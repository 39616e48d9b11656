"""Bench results out: terminal table, CSV/JSON/Markdown summary, Parquet raw samples, a PNG of
plots (bench/plot.py). Every file is written atomically; the JSON schema is documented in
docs/bench-report.md. The report edge: the typed rows (bench/records.py) become columns here.
"""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path

from alexnet_deploy.bench.plot import plot_report
from alexnet_deploy.bench.records import BenchRow, Fidelity, Roofline, RoundSamples
from alexnet_deploy.bench.stats import UNSTABLE_CAUSE, UNSTABLE_HINT
from alexnet_deploy.cases import KEY_COLUMNS
from alexnet_deploy.fileio import (
    atomic_path,
    publish,
    remove_file,
    staging_directory,
    write_json_atomic,
    write_text_atomic,
)
from alexnet_deploy.outputs import mark_directory

SCHEMA = "alexnet-deploy/bench/1"
# In priority order: a terminal too narrow for all shows the leading ones (and names the rest).
TERMINAL_COLUMNS = {
    "backend": "backend",
    "precision": "prec",
    "computed": "computed in",  # read back from the runtime: "fp32 model, ran bf16"
    "batch": "batch",
    "static": "static",  # only where a row's engine was compiled for its batch alone
    "float_precision": "float parts",  # only where an INT8 row's float parts ran bf16
    "mode": "mode",
    "status": "status",
    "images_per_s": "img/s",
    "p50_ms": "p50 ms",
    "top1_agreement": "agree (as run)",  # fidelity as this engine executed it on this CPU
    "p99_ms": "p99 ms",
    "emulated_top1_agreement": "agree (emul.)",  # the artifact's exact Q/DQ/FP16 semantics
    "quantizer": "int8 by",
    "inferences_per_s": "inf/s",
    "centered_cosine": "cos(c)",
    "pct_compute_peak": "% peak",
    "bound": "bound",
    "instability": "unstable because",
}


def describe_ceilings(c: dict) -> str:
    """One line: the peaks (and what they come from), the best measured kernels, bandwidth."""
    if "clock_ghz" not in c:  # reports from before peaks came from the instruction set
        return (
            f"measured FP32 {c['fp32_gflops']:.0f} GFLOP/s, INT8 {c['int8_gops']:.0f} GOP/s, "
            f"copy bandwidth {c['bandwidth_gbs']:.1f} GB/s"
        )
    llc = f", last-level cache {c['llc_bytes'] / 2**20:.0f} MiB" if c.get("llc_bytes") else ""
    return (
        f"peak FP32 {c['fp32_gflops']:.0f} GFLOP/s, INT8 {c['int8_gops']:.0f} GOP/s "
        f"({c['cores']} cores x {c['clock_ghz']:.2f} GHz {c['clock_source']} x {c['isa']})"
        + (
            f"; 16-bit float paths {c['half_float_gflops']:.0f} GFLOP/s (for runtimes that pick them)"
            if c.get("half_float_gflops")
            else ""
        )
        + (
            f"; BF16 {c['bf16_gflops']:.0f} GFLOP/s (rows computed in bf16)"
            if c.get("bf16_gflops")
            else ""
        )
        + "; "
        f"best measured kernel FP32 {c['fp32_kernel_gflops']:.0f} GFLOP/s, INT8 "
        f"{c['int8_kernel_gops']:.0f} GOP/s; copy bandwidth {c['bandwidth_gbs']:.1f} GB/s{llc}"
    )


def _clean(value):
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value


def summary_frame(rows: list[BenchRow]):
    """Rows as a polars DataFrame, every column of any row a column (missing values null)."""
    import polars as pl

    flat = [row.to_columns() for row in rows]
    columns: list[str] = []
    for row in flat:
        columns += [k for k in row if k not in columns and k != "traceback"]
    return pl.DataFrame(
        [{c: _clean(row.get(c)) for c in columns} for row in flat], infer_schema_length=None
    )


def samples_frame(samples: list[RoundSamples]):
    """The raw-sample table (bench-samples.parquet): one line per sample, its configuration's
    key columns, its round (``repeat``), its place in the round (``index``) and ``latency_ns``."""
    import numpy as np
    import polars as pl

    if not samples:
        return pl.DataFrame(schema={"backend": pl.String, "latency_ns": pl.Int64})
    columns: dict[str, list] = {name: [] for name in KEY_COLUMNS}
    for part in samples:
        for name, value in part.case.columns().items():  # defaults too: a filter needs them
            columns[name] += [value] * len(part.latency_ns)
    return pl.DataFrame(
        {
            **columns,
            "repeat": np.concatenate([np.full(len(p.latency_ns), p.repeat) for p in samples]),
            "index": np.concatenate([np.arange(len(p.latency_ns)) for p in samples]),
            "latency_ns": np.concatenate([p.latency_ns for p in samples]).astype(np.int64),
        }
    )


def terminal_frame(rows: list[BenchRow]):
    import polars as pl

    frame = summary_frame(rows)
    if any(r.computed_label for r in rows):
        frame = frame.with_columns(pl.Series("computed", [r.computed_label for r in rows]))
    if {"quantizer", "precision"} <= set(frame.columns):  # an INT8 route only on INT8 rows
        frame = frame.with_columns(
            pl.when(pl.col("precision") == "int8").then(pl.col("quantizer")).alias("quantizer")
        )
    if "unstable" in frame.columns:  # an unstable row says so where "ok" would stand
        frame = frame.with_columns(
            pl.when(pl.col("unstable")).then(pl.lit("unstable")).otherwise(pl.col("status"))
            .alias("status")
        )  # fmt: skip
        if not frame["unstable"].any():
            frame = frame.drop("instability")
    present = [c for c in TERMINAL_COLUMNS if c in frame.columns]
    return frame.select(present).rename({c: TERMINAL_COLUMNS[c] for c in present})


def _num(value, digits: int = 3) -> str:
    """A number for people: 3 significant figures, thousands kept whole ('1,234', '11.3')."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def _percent(share: float | None) -> str:
    return "" if share is None else _num(100 * share, 4)


def people_frame(rows: list[BenchRow]):
    """The report's table for people: rounded numbers with units in the headers, the p50's
    95% interval beside it, fidelity in words, and an empty cell where a column does not apply
    (the INT8 route of an FP32 row). The CSV, JSON and Parquet keep every digit."""
    import polars as pl

    out = []
    for r in rows:
        ok = r.ok
        fidelity, roofline = r.fidelity or Fidelity(), r.roofline or Roofline()
        interval = (
            f" ({_num(r.latency.p50_ci_low)}-{_num(r.latency.p50_ci_high)})"
            if ok and r.latency is not None
            else ""
        )
        out.append(
            {
                "configuration": r.label,
                "computed in": r.computed_label,
                "AMX tiles": "yes" if r.engine is not None and r.engine.amx else "",
                "INT8 made by": r.case.quantizer if r.case.precision == "int8" else "",
                "status": ("unstable" if r.unstable else r.status) if ok else f"failed: {r.reason}",
                "images/s": _num(r.images_per_s) if ok else "",
                "p50 ms (95% CI)": (_num(r.p50_ms) + interval) if ok else "",
                "p99 ms": _num(r.p99_ms) if ok else "",
                "top-1 agrees with FP32, as run (%)": _percent(fidelity.top1_agreement)
                if ok
                else "",
                "top-1 agrees, emulated (%)": _percent(fidelity.emulated_top1_agreement)
                if ok
                else "",
                "% of compute peak": _num(roofline.pct_compute_peak) if ok else "",
                "bound by": roofline.bound or "",
                "unstable because": r.instability,
            }
        )
    frame = pl.DataFrame(out) if out else pl.DataFrame({"configuration": []})
    empty = [c for c in frame.columns if frame[c].dtype == pl.String and (frame[c] == "").all()]
    return frame.drop(empty)


def markdown(report: dict, frame) -> str:
    from alexnet_deploy.render import TableFormat, frame_as_text

    env = report["environment"]
    lines = [
        f"# alexnet-deploy bench of {report.get('model', {}).get('name', 'the model')}",
        "",
        f"- model: {report.get('model', {}).get('path')}",
        f"- command: `{report['command']}`",
        f"- status: {report['status']}",
        f"- machine: {env['cpu']}, {env['logical_cores']} logical cores, {env['os']}",
        f"- runtimes: {', '.join(f'{k} {v}' for k, v in env['runtimes'].items())}",
        f"- git commit: {env.get('git_commit')}",
    ]
    if report.get("ceilings"):
        c = report["ceilings"]
        lines.append(f"- ceilings: {describe_ceilings(c)}")
    lines.append(f"- fidelity inputs: {report.get('fidelity_source')}")
    lines.append(f"- timed inputs: {report.get('timed_inputs', 'random')}")
    if report.get("comparisons"):  # the headline first
        lines += ["", "## Headline (same run)", ""]
        for name, value in report["comparisons"].items():
            lines.append(f"- **{name}**: {value.get('text', json.dumps(value))}")
    lines += [
        "",
        "## Every configuration",
        "",
        "images/s counts images (a batch of 32 is 32 images). Agreement: the share of inputs whose "
        "top-1 class equals FP32's, as this engine ran it on this CPU, and as the artifact means "
        "it (Q/DQ and FP16 computed exactly). Every digit is in bench-summary.csv/json.",
        "",
    ]
    lines.append(frame_as_text(frame, TableFormat.md))
    unstable = int((frame["status"] == "unstable").sum()) if "status" in frame.columns else 0
    if unstable:
        lines += [
            "",
            f"**{unstable} unstable row(s)**: their own measurements disagree (the reason is in "
            f"the row); likely cause: {UNSTABLE_CAUSE}. Their figures, and any headline that "
            f"rests on them, are not to be trusted: {UNSTABLE_HINT}.",
        ]
    if report.get("not_measured"):
        lines += ["", "## Not measured", ""]
        lines += [f"- {item['what']}: {item['reason']}" for item in report["not_measured"]]
    return "\n".join(lines) + "\n"


REPORT_FILES = {
    "csv": "bench-summary.csv",
    "json": "bench-summary.json",
    "md": "bench-summary.md",
    "parquet": "bench-samples.parquet",
    "png": "bench-report.png",
}


def check_report_dir(out: Path, work_dir: Path, *, inputs: dict, end_to_end: bool = False) -> None:
    """bench's report directory, checked before any work (outputs.py): never an input, the
    current or work directory, nor over report files this tool did not write."""
    from alexnet_deploy.outputs import OutputDir, check_outputs

    # the bench report's JSON first: it tells an earlier report of this tool
    ours = dict.fromkeys([REPORT_FILES["json"], *REPORT_FILES.values()])
    files = () if end_to_end else tuple(ours)
    check_outputs("bench", {"--out": OutputDir(out, files)}, inputs, work_dir=work_dir)


def publish_reports(report: dict, rows: list[BenchRow], samples: list[RoundSamples], out_dir: Path):
    """Write a run's report files into a fresh directory, then move them over ``out_dir``'s,
    and remove the previous run's files this run does not write (its plot, say), so the
    directory never mixes two runs. A run interrupted before its first finished row leaves a
    previous report untouched: returns no paths then (a run whose rows all failed is news, and
    is written)."""
    import shutil

    out_dir = Path(out_dir)
    interrupted_early = report.get("status") == "interrupted" and not any(r.ok for r in rows)
    if interrupted_early and (out_dir / REPORT_FILES["json"]).exists():
        return {}
    made = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    staging = staging_directory(out_dir)
    try:
        written = write_reports(report, rows, samples, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if made:
            with contextlib.suppress(OSError):
                out_dir.rmdir()  # made for this report, and it was never written
        raise
    try:
        if made:
            mark_directory(out_dir, "bench")  # made by this tool: its own
        for key, name in REPORT_FILES.items():
            if key in written:
                publish(staging / name, out_dir / name)
            else:
                remove_file(out_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {key: out_dir / REPORT_FILES[key] for key in written}


def write_reports(
    report: dict, rows: list[BenchRow], samples: list[RoundSamples], out_dir: Path
) -> dict[str, Path]:
    import polars as pl

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = report.get("model", {}).get("name")
    frame = summary_frame(rows)
    if name:  # the model each row measured, in the first column
        frame = frame.select(pl.lit(name).alias("model"), pl.all())
    paths = {}
    nested = [c for c, dtype in frame.schema.items() if isinstance(dtype, pl.List)]
    flat = frame.with_columns(  # CSV holds no lists: per-round values joined with ';'
        [pl.col(c).cast(pl.List(pl.String)).list.join(";") for c in nested]
    )
    with atomic_path(out_dir / "bench-summary.csv") as tmp:
        flat.write_csv(tmp)
    paths["csv"] = out_dir / "bench-summary.csv"
    paths["json"] = write_json_atomic(
        out_dir / "bench-summary.json",
        {
            **report,
            "rows": [
                {"model": name, **{k: _clean(v) for k, v in r.to_columns().items()}} for r in rows
            ],
        },
    )
    paths["md"] = write_text_atomic(
        out_dir / "bench-summary.md", markdown(report, people_frame(rows))
    )
    with atomic_path(out_dir / "bench-samples.parquet") as tmp:
        samples_frame(samples).write_parquet(tmp)
    paths["parquet"] = out_dir / "bench-samples.parquet"
    env = report.get("environment", {})
    title = (
        f"alexnet-deploy bench of {name or 'the model'}: {env.get('cpu', 'unknown CPU')} "
        f"({env.get('cpu_isa', '?')}, {env.get('logical_cores', '?')} cores), "
        f"{str(report.get('created', ''))[:10]}"
    )
    png = plot_report(rows, samples, out_dir / "bench-report.png", title)
    if png:
        paths["png"] = png
    return paths
