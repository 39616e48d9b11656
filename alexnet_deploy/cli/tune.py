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
    NonNegativeFloat,
    PositiveFloat,
    PositiveInt,
    WorkDirOpt,
    check_order,
    many,
)
from alexnet_deploy.cli.store import StoreOpt, append_report, check_store
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
            "Concurrent requests / streams to search (default: the runtime's optimal number, "
            f"then {','.join(map(str, C.TUNE_REQUESTS))} around the fastest).",
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
        int,
        typer.Option(
            "--repeat",
            help="Rounds over each stage's candidates (the confirm stage: at least "
            f"{C.TUNE_CONFIRM_ROUNDS}).",
            callback=PositiveInt,
        ),
    ] = 1,
    time_budget: Annotated[
        float,
        typer.Option(
            "--time-budget",
            help="Seconds the search may take (0: no limit; the artifacts it needs are made "
            "before it); candidates it cannot cover are skipped, and listed.",
            callback=NonNegativeFloat,
        ),
    ] = C.TUNE_TIME_BUDGET_S,
    direct: Annotated[
        bool,
        typer.Option(
            "--direct/--no-direct",
            help="Also measure each runtime searched used directly with its documented "
            "throughput settings, and set the choice beside them.",
        ),
    ] = True,
    roofline: Annotated[
        bool,
        typer.Option(
            "--roofline/--no-roofline",
            help="Measure machine ceilings (cached): each row's % of the INT8 compute peak.",
        ),
    ] = True,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o", "--output", help="Where to save the choice (default: WORK_DIR/tuned.json)."
        ),
    ] = None,
    work_dir: WorkDirOpt = Path(C.DEFAULT_WORK_DIR),
    store: StoreOpt = None,
    fmt: FormatOpt = TableFormat.table,
) -> None:
    """Search runtime x batch x static shape x concurrency (x threads) for the fastest engine meeting a constraint, confirm the finalists in interleaved rounds, beside each runtime used directly; save the choice."""
    use_format(fmt)
    check_order(min_seconds, max_seconds, "--min-seconds", "--max-seconds")
    from alexnet_deploy import api
    from alexnet_deploy.bench.pipeline import BenchOptions
    from alexnet_deploy.bench.tune import Constraint, choose, save_tuned, tune_config
    from alexnet_deploy.bench.tune_report import (
        choice_lines,
        front_frame,
        tune_comparisons,
        tuned_record,
    )
    from alexnet_deploy.bench.tune_search import StagedSearch, check_time_budget

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
    check_time_budget(time_budget, config.rules)
    out = WorkDir(work_dir).tune_reports
    from alexnet_deploy.outputs import OutputDir, check_outputs

    check_outputs(
        "tune", {"-o": output or WorkDir(work_dir).tuned, "reports": OutputDir(out)},
        {"model": model, "images": data}, work_dir=work_dir,
    )  # fmt: skip
    spec = check_store(store, work_dir)
    search = StagedSearch(
        constraint,
        time_budget=time_budget,
        requests_given=bool(streams),
        direct=direct,
        direct_batches=tuple(batch or C.TUNE_DIRECT_BATCHES),
    )
    options = BenchOptions(
        direct=direct,
        roofline=roofline,
        max_top1_drop=max_top1_drop,
        search=search,
        extra_comparisons=lambda _model, rows: tune_comparisons(search, rows),
    )
    with status("tuning") as shown:
        report, result, paths = api.bench(
            model,
            config,
            data=data,
            work_dir=work_dir,
            out=out,
            options=options,
            progress=shown.update,
        )
    if search.relaxed:
        err_console.print(
            "Note: untrained weights or synthetic images: the top-1 constraint is not enforced "
            "(fidelity is uninformative)."
        )
    tuned = choose(
        result.rows, search.constraint, search.record()["skipped_text"], search.confirmed
    )
    print_table(front_frame(tuned, search.shape), "Pareto front: throughput against p99")
    direct_rows = tune_comparisons(search, result.rows).get("tune_vs_direct", {})
    path = save_tuned(
        tuned_record(
            tuned, search.constraint, report["model"], paths["json"], search.record(), direct_rows
        ),
        output or WorkDir(work_dir).tuned,
    )
    for line in choice_lines(tuned, report["model"]["name"], path, search, direct_rows):
        out_console.print(line, highlight=False, soft_wrap=True)
    out_console.print(f"full table: {paths['md']}", highlight=False)
    append_report(spec, out, "tune")
