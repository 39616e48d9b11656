"""tune: search, and save the choice."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from alexnet_deploy import constants as C
from alexnet_deploy.artifacts import WorkDir
from alexnet_deploy.cli.console import err_console, out_console, print_table, status, use_format
from alexnet_deploy.cli.options import (
    DataOpt,
    FormatOpt,
    MaxDropOpt,
    PositiveFloat,
    PositiveInt,
    WorkDirOpt,
    check_order,
    many,
)
from alexnet_deploy.engines.options import PRECISIONS, QUANTIZERS
from alexnet_deploy.engines.registry import BENCH_BACKENDS
from alexnet_deploy.render import TableFormat


def tune(
    model: Annotated[
        Path | None,
        typer.Option("--model", help="An FP32 export (default: the main job's, cached)."),
    ] = None,
    data: DataOpt = "shipped",
    backend: Annotated[
        list[str] | None,
        many("--backend", "Runtimes to search (default: ort, openvino).", choices=BENCH_BACKENDS),
    ] = None,
    precision: Annotated[
        list[str] | None,
        many(
            "--precision",
            "Precisions to search (default: int8, and bf16 where this CPU has native BF16 and "
            "a runtime searched runs it: openvino, torch).",
            choices=PRECISIONS,
        ),
    ] = None,
    batch: Annotated[
        list[str] | None,
        many(
            "--batch",
            f"Batch sizes to search (default: {','.join(map(str, C.TUNE_BATCHES))}).",
            kind=int,
            rule=PositiveInt,
        ),
    ] = None,
    streams: Annotated[
        list[str] | None,
        many(
            "--streams",
            "Concurrent requests / streams to search "
            f"(default: {','.join(map(str, C.TUNE_STREAMS))}).",
            kind=int,
            rule=PositiveInt,
        ),
    ] = None,
    threads: Annotated[
        list[str] | None,
        many(
            "--threads",
            "Thread counts to search (default: the runtime's).",
            kind=int,
            rule=PositiveInt,
        ),
    ] = None,
    quantizer: Annotated[
        list[str] | None,
        many(
            "--quantizer",
            "INT8 routes to search (default: qdq, and nncf where installed).",
            choices=QUANTIZERS,
        ),
    ] = None,
    max_p99_ms: Annotated[
        float | None,
        typer.Option("--max-p99-ms", help="Constraint: p99 latency bound.", callback=PositiveFloat),
    ] = None,
    max_top1_drop: MaxDropOpt = C.DEFAULT_MAX_TOP1_DROP,
    min_seconds: Annotated[float, typer.Option("--min-seconds", callback=PositiveFloat)] = 1.0,
    max_seconds: Annotated[float, typer.Option("--max-seconds", callback=PositiveFloat)] = 4.0,
    repeat: Annotated[
        int, typer.Option("--repeat", help="Rounds over the whole space.", callback=PositiveInt)
    ] = 1,
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
    check_order(min_seconds, max_seconds, "--min-seconds", "--max-seconds")
    from alexnet_deploy import api
    from alexnet_deploy.bench.pipeline import BenchOptions
    from alexnet_deploy.bench.tune import (
        Constraint,
        choose,
        front_rows,
        save_tuned,
        tune_config,
        tuned_record,
    )

    constraint = Constraint(max_p99_ms=max_p99_ms, min_top1_agreement=1 - max_top1_drop / 100)
    config = tune_config(
        backends=tuple(backend or ()),
        precisions=tuple(precision or ()),
        batches=tuple(batch or ()),
        streams=tuple(streams or ()),
        threads=tuple(threads or ()),
        quantizers=tuple(quantizer or ()),
        min_seconds=min_seconds,
        max_seconds=max_seconds,
        repeat=repeat,
    )
    out = WorkDir(work_dir).tune_reports
    from alexnet_deploy.outputs import OutputDir, check_outputs

    check_outputs(
        "tune", {"-o": output or WorkDir(work_dir).tuned, "reports": OutputDir(out)},
        {"model": model, "images": data}, work_dir=work_dir,
    )  # fmt: skip
    with status("tuning") as shown:
        report, result, paths = api.bench(
            model,
            config,
            data=data,
            work_dir=work_dir,
            out=out,
            options=BenchOptions(direct=False, roofline=False, max_top1_drop=max_top1_drop),
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
    from alexnet_deploy.bench.pipeline import unstable_note

    row, c = tuned.chosen, tuned.chosen.case
    out_console.print(
        f"chosen: {c.backend} {c.precision} ({c.quantizer}) batch {c.batch} streams {c.streams} threads "
        f"{c.threads}: {row.images_per_s:.1f} images/s, p99 {row.p99_ms:.1f} ms; saved {path}"
        + unstable_note(row),
        highlight=False,
        soft_wrap=True,
    )
    out_console.print(f"full table: {paths['md']}", highlight=False)
