"""Bench results out: terminal table, CSV/JSON/Markdown summary, Parquet raw samples, a PNG of
plots. Every file is written atomically; the JSON schema is documented in docs/bench-report.md.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path

from alexnet_deploy.cases import Case
from alexnet_deploy.fileio import (
    atomic_path,
    staging_directory,
    write_json_atomic,
    write_text_atomic,
)

SCHEMA = "alexnet-deploy/bench/1"
# In priority order: a terminal too narrow for all shows the leading ones (and names the rest).
TERMINAL_COLUMNS = {
    "backend": "backend",
    "precision": "prec",
    "batch": "batch",
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
        + "; "
        f"best measured kernel FP32 {c['fp32_kernel_gflops']:.0f} GFLOP/s, INT8 "
        f"{c['int8_kernel_gops']:.0f} GOP/s; copy bandwidth {c['bandwidth_gbs']:.1f} GB/s{llc}"
    )


def _clean(value):
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    return value


def summary_frame(rows: list[dict]):
    """Rows as a polars DataFrame, every key a column (missing values null)."""
    import polars as pl

    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns and k != "traceback"]
    return pl.DataFrame(
        [{c: _clean(row.get(c)) for c in columns} for row in rows], infer_schema_length=None
    )


def terminal_frame(rows: list[dict]):
    import polars as pl

    frame = summary_frame(rows)
    if {"quantizer", "precision"} <= set(frame.columns):  # an INT8 route only on INT8 rows
        frame = frame.with_columns(
            pl.when(pl.col("precision") == "int8").then(pl.col("quantizer")).alias("quantizer")
        )
    present = [c for c in TERMINAL_COLUMNS if c in frame.columns]
    return frame.select(present).rename({c: TERMINAL_COLUMNS[c] for c in present})


def _num(value, digits: int = 3) -> str:
    """A number for people: 3 significant figures, thousands kept whole ('1,234', '11.3')."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def people_frame(rows: list[dict]):
    """The report's table for people: rounded numbers with units in the headers, the p50's
    95% interval beside it, fidelity in words, and an empty cell where a column does not apply
    (the INT8 route of an FP32 row). The CSV, JSON and Parquet keep every digit."""
    import polars as pl

    out = []
    for r in rows:
        ok = r.get("status") == "ok"
        interval = (
            f" ({_num(r['p50_ci_low_ms'])}-{_num(r['p50_ci_high_ms'])})"
            if ok and r.get("p50_ci_low_ms") is not None
            else ""
        )
        out.append(
            {
                "configuration": Case.from_row(r).label,
                "INT8 made by": (r.get("quantizer") or "qdq") if r["precision"] == "int8" else "",
                "status": r["status"] if ok else f"failed: {r.get('reason', '')}",
                "images/s": _num(r.get("images_per_s")) if ok else "",
                "p50 ms (95% CI)": (_num(r.get("p50_ms")) + interval) if ok else "",
                "p99 ms": _num(r.get("p99_ms")) if ok else "",
                "top-1 agrees with FP32, as run (%)": _num(100 * r["top1_agreement"], 4)
                if ok and r.get("top1_agreement") is not None
                else "",
                "top-1 agrees, emulated (%)": _num(100 * r["emulated_top1_agreement"], 4)
                if ok and r.get("emulated_top1_agreement") is not None
                else "",
                "% of compute peak": _num(r.get("pct_compute_peak"))
                if ok and r.get("pct_compute_peak") is not None
                else "",
                "bound by": r.get("bound") or "",
            }
        )
    frame = pl.DataFrame(out) if out else pl.DataFrame({"configuration": []})
    empty = [c for c in frame.columns if frame[c].dtype == pl.String and (frame[c] == "").all()]
    return frame.drop(empty)


def markdown(report: dict, frame) -> str:
    from alexnet_deploy.render import TableFormat, frame_as_text

    env = report["environment"]
    lines = [
        "# alexnet-deploy bench",
        "",
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
    return "\n".join(lines) + "\n"


REPORT_FILES = {
    "csv": "bench-summary.csv",
    "json": "bench-summary.json",
    "md": "bench-summary.md",
    "parquet": "bench-samples.parquet",
    "png": "bench-report.png",
}


def publish_reports(report: dict, rows: list[dict], samples: list[dict], out_dir: Path):
    """Write a run's report files into a fresh directory, then move them over ``out_dir``'s,
    and remove the previous run's files this run does not write (its plot, say), so the
    directory never mixes two runs. A run interrupted before its first finished row leaves a
    previous report untouched: returns no paths then (a run whose rows all failed is news, and
    is written)."""
    import shutil

    out_dir = Path(out_dir)
    interrupted_early = report.get("status") == "interrupted" and not any(
        r.get("status") == "ok" for r in rows
    )
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
        for key, name in REPORT_FILES.items():
            if key in written:
                os.replace(staging / name, out_dir / name)
            else:
                (out_dir / name).unlink(missing_ok=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return {key: out_dir / REPORT_FILES[key] for key in written}


def write_reports(
    report: dict, rows: list[dict], samples: list[dict], out_dir: Path
) -> dict[str, Path]:
    import polars as pl

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = summary_frame(rows)
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
        {**report, "rows": [{k: _clean(v) for k, v in r.items()} for r in rows]},
    )
    paths["md"] = write_text_atomic(
        out_dir / "bench-summary.md", markdown(report, people_frame(rows))
    )
    sample_frame = (
        pl.DataFrame(samples, infer_schema_length=None)
        if samples
        else pl.DataFrame(schema={"backend": pl.String, "latency_ns": pl.Int64})
    )
    with atomic_path(out_dir / "bench-samples.parquet") as tmp:
        sample_frame.write_parquet(tmp)
    paths["parquet"] = out_dir / "bench-samples.parquet"
    env = report.get("environment", {})
    title = (
        f"alexnet-deploy bench: {env.get('cpu', 'unknown CPU')} "
        f"({env.get('cpu_isa', '?')}, {env.get('logical_cores', '?')} cores), "
        f"{str(report.get('created', ''))[:10]}"
    )
    png = plot_report(rows, samples, out_dir / "bench-report.png", title)
    if png:
        paths["png"] = png
    return paths


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of points not dominated in (higher throughput, lower p99)."""
    front = []
    for i, (tput, p99) in enumerate(points):
        dominated = any(t >= tput and p <= p99 and (t, p) != (tput, p99) for t, p in points)
        if not dominated:
            front.append(i)
    return front


def plot_report(
    rows: list[dict], samples: list[dict], path: Path, title: str = "alexnet-deploy bench"
) -> Path | None:
    """Latency distributions, throughput against batch, and the throughput-vs-p99 front, under
    a title that names the machine and the date."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None  # plots need the 'plot' extra; the tables are written regardless
    ok = [r for r in rows if r["status"] == "ok"]
    if not ok:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(18, 5.5))
    label = lambda r: Case.from_row(r).label  # noqa: E731
    # per-request latency: one request at a time where measured so, else every row's requests
    latency_rows = [r for r in ok if r["mode"] == "latency"] or ok
    data = []
    for r in latency_rows:
        key = Case.from_row(r).key()
        data.append(
            [s["latency_ns"] / 1e6 for s in samples if all(s.get(k) == v for k, v in key.items())]
        )
    if data:
        axes[0].boxplot(data, orientation="horizontal", showfliers=False)
        axes[0].set_yticks(range(1, len(data) + 1), [label(r) for r in latency_rows], fontsize=7)
        axes[0].set_xscale("log")
    axes[0].set_title("latency distribution (ms, log)")
    series: dict[tuple, list] = {}
    for r in ok:
        precision = r["precision"] + (" nncf" if r.get("quantizer") == "nncf" else "")
        series.setdefault((r["backend"], precision, r["mode"]), []).append(
            (r["batch"], r["images_per_s"])
        )
    # every series told apart three ways: colour by backend, marker by precision, line by mode
    backends = sorted({b for b, _, _ in series})
    markers = {"fp32": "o", "fp16": "s", "int8": "^", "int8 nncf": "D", "served": "P"}
    lines = {"latency": "-", "throughput": "--", "server": ":"}
    for (backend, precision, mode), pts in sorted(series.items()):
        pts.sort()
        axes[1].plot(
            [p[0] for p in pts],
            [p[1] for p in pts],
            color=plt.get_cmap("tab10")(backends.index(backend) % 10),
            marker=markers.get(precision, "x"),
            linestyle=lines.get(mode, "-."),
            label=f"{backend} {precision} {mode}",
        )
    axes[1].set_xscale("log", base=2)
    batches = sorted({r["batch"] for r in ok})
    axes[1].set_xticks(batches, [str(b) for b in batches])
    axes[1].set_xlabel("batch (images per call)")
    axes[1].set_ylabel("images/s")
    axes[1].set_title("throughput against batch size")
    axes[1].legend(fontsize=6, loc="upper left", ncol=2)
    points = [(r["images_per_s"], r["p99_ms"]) for r in ok]
    axes[2].scatter([p[1] for p in points], [p[0] for p in points], s=18, color="0.6")
    front = sorted(pareto_front(points), key=lambda i: points[i][1])
    axes[2].plot(
        [points[i][1] for i in front], [points[i][0] for i in front], color="C3", marker="o"
    )
    for i in front:
        axes[2].annotate(label(ok[i]), (points[i][1], points[i][0]), fontsize=6)
    axes[2].set_xscale("log")
    axes[2].set_xlabel("p99 latency (ms)")
    axes[2].set_ylabel("images/s")
    axes[2].set_title("throughput vs p99: Pareto front")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path
