"""tune: search, and save the choice."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from alexnet_deploy import constants as C
from alexnet_deploy.artifacts import WorkDir
from alexnet_deploy.cli.console import err_console, out_console, print_table, status, use_format
from alexnet_deploy.cli.options import (
    BenchBackendChoice,
    DataOpt,
    FormatOpt,
    MaxDropOpt,
    PrecisionChoice,
    QuantizerChoice,
    WorkDirOpt,
)
from alexnet_deploy.render import TableFormat


def tune(
    model: Annotated[
        Path | None,
        typer.Option("--model", help="An FP32 export (default: the main job's, cached)."),
    ] = None,
    data: DataOpt = "shipped",
    backend: Annotated[
        list[BenchBackendChoice] | None,
        typer.Option("--backend", help="Runtimes to search (default: ort, openvino)."),
    ] = None,
    precision: Annotated[
        list[PrecisionChoice] | None,
        typer.Option("--precision", help="Precisions to search (default: int8)."),
    ] = None,
    batch: Annotated[str, typer.Option("--batch", help="Batch sizes to search.")] = "1,8,32,64",
    streams: Annotated[
        str, typer.Option("--streams", help="Concurrent requests / streams to search.")
    ] = "1,2",
    threads: Annotated[
        str | None,
        typer.Option("--threads", help="Thread counts to search (default: the runtime's)."),
    ] = None,
    quantizer: Annotated[
        list[QuantizerChoice] | None,
        typer.Option(
            "--quantizer", help="INT8 routes to search (default: qdq, and nncf where installed)."
        ),
    ] = None,
    max_p99_ms: Annotated[
        float | None, typer.Option("--max-p99-ms", help="Constraint: p99 latency bound.")
    ] = None,
    max_top1_drop: MaxDropOpt = C.DEFAULT_MAX_TOP1_DROP,
    min_seconds: Annotated[float, typer.Option("--min-seconds")] = 1.0,
    max_seconds: Annotated[float, typer.Option("--max-seconds")] = 4.0,
    repeat: Annotated[int, typer.Option("--repeat", help="Rounds over the whole space.")] = 1,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o", "--output", help="Where to save the choice (default: WORK_DIR/tuned.json)."
        ),
    ] = None,
    work_dir: WorkDirOpt = Path(C.DEFAULT_WORK_DIR),
    fmt: FormatOpt = TableFormat.table,
) -> None:
    """Search runtime x batch x concurrency x threads for the fastest engine meeting a constraint; save the choice."""
    use_format(fmt)
    from alexnet_deploy.bench.tune import (
        Constraint,
        choose,
        front_rows,
        save_tuned,
        tune_config,
        tuned_record,
    )
    from alexnet_deploy.workflow import ModelRequest, bench_model

    constraint = Constraint(max_p99_ms=max_p99_ms, min_top1_agreement=1 - max_top1_drop / 100)
    config = tune_config(
        backends=tuple(b.value for b in backend or ()),
        precisions=tuple(p.value for p in precision or ()),
        batch=batch,
        streams=streams,
        threads=threads,
        quantizers=tuple(q.value for q in quantizer or ()),
        min_seconds=min_seconds,
        max_seconds=max_seconds,
        repeat=repeat,
    )
    out = WorkDir(work_dir).tune_reports
    with status("tuning") as shown:
        report, result, paths = bench_model(
            ModelRequest(model=model, data=data),
            config,
            work_dir,
            out,
            direct=False,
            roofline=False,
            progress=shown.update,
        )
    if report["model"]["weights"] == "untrained":
        from dataclasses import replace

        constraint = replace(constraint, min_top1_agreement=0.0)
        err_console.print(
            "Note: untrained weights: the top-1 constraint is not enforced (fidelity is uninformative)."
        )
    tuned = choose(result.rows, constraint)
    import polars as pl

    front = pl.DataFrame(front_rows(tuned))
    print_table(front, "Pareto front: throughput against p99")
    path = save_tuned(
        tuned_record(tuned, constraint, Path(report["model"]["path"]), paths["json"]),
        output or WorkDir(work_dir).tuned,
    )
    c = tuned.chosen
    out_console.print(
        f"chosen: {c['backend']} {c['precision']} ({c.get('quantizer', 'qdq')}) batch {c['batch']} streams {c.get('streams')} threads "
        f"{c.get('threads')}: {c['images_per_s']:.1f} images/s, p99 {c['p99_ms']:.1f} ms; saved {path}",
        highlight=False,
        soft_wrap=True,
    )
    out_console.print(f"full table: {paths['md']}", highlight=False)
