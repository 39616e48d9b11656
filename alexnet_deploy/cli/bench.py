"""bench: the benchmark matrix, the main job."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from alexnet_deploy import constants as C
from alexnet_deploy.artifacts import WorkDir
from alexnet_deploy.bench.config import MODES
from alexnet_deploy.cli.console import (
    bench_progress,
    err_console,
    out_console,
    print_table,
    status,
    use_format,
)
from alexnet_deploy.cli.options import (
    EXIT_PARTIAL,
    DataOpt,
    FloatPrecisionOpt,
    FormatOpt,
    NonNegativeFloat,
    NonNegativeInt,
    Percentile,
    PositiveFloat,
    PositiveInt,
    SeedOpt,
    VariantChoice,
    VariantOpt,
    WorkDirOpt,
    many,
)
from alexnet_deploy.cli.store import END_TO_END_NOT_STORED, StoreOpt, append_report, check_store
from alexnet_deploy.engines.options import PRECISIONS, QUANTIZERS
from alexnet_deploy.engines.registry import BENCH_BACKENDS
from alexnet_deploy.models.variants import DEFAULT_VARIANT
from alexnet_deploy.render import TableFormat


def bench(
    model: Annotated[
        Path | None,
        typer.Option("--model", help="An FP32 export to bench (default: export one, cached)."),
    ] = None,
    variant: VariantOpt = VariantChoice(DEFAULT_VARIANT),
    weights: Annotated[
        Path | None, typer.Option("--weights", help="Checkpoint for the export.")
    ] = None,
    seed: SeedOpt = C.DEFAULT_SEED,
    data: DataOpt = "shipped",
    config_file: Annotated[
        Path | None,
        typer.Option("--config", help="TOML file with \\[matrix] and \\[rules] tables."),
    ] = None,
    backend: Annotated[
        list[str] | None,
        many(
            "--backend",
            "Backends (default: all available, plus the direct runtimes).",
            choices=BENCH_BACKENDS,
        ),
    ] = None,
    precision: Annotated[
        list[str] | None,
        many("--precision", "Precisions (default: all).", choices=PRECISIONS),
    ] = None,
    batch: Annotated[
        list[str] | None,
        many("--batch", "Batch sizes (default: 1,32).", kind=int, rule=PositiveInt),
    ] = None,
    mode: Annotated[
        list[str] | None,
        many("--mode", "Measurement modes (default: latency).", choices=MODES),
    ] = None,
    quantizer: Annotated[
        list[str] | None,
        many(
            "--quantizer",
            "INT8 routes: qdq (this tool's), nncf (NNCF's) (default: qdq).",
            choices=QUANTIZERS,
        ),
    ] = None,
    static: Annotated[
        bool,
        typer.Option(
            "--static",
            help="Compile each case's engine for its own batch alone (default: a dynamic range).",
        ),
    ] = False,
    float_precision: FloatPrecisionOpt = None,
    threads: Annotated[
        list[str] | None,
        many("--threads", "Intra-op thread counts to sweep.", kind=int, rule=PositiveInt),
    ] = None,
    streams: Annotated[
        list[str] | None,
        many(
            "--streams",
            "Concurrent requests / OpenVINO streams to sweep.",
            kind=int,
            rule=PositiveInt,
        ),
    ] = None,
    warmup_iterations: Annotated[
        int | None, typer.Option("--warmup-iterations", callback=NonNegativeInt)
    ] = None,
    warmup_seconds: Annotated[
        float | None, typer.Option("--warmup-seconds", callback=NonNegativeFloat)
    ] = None,
    min_iterations: Annotated[
        int | None, typer.Option("--min-iterations", callback=PositiveInt)
    ] = None,
    min_seconds: Annotated[
        float | None, typer.Option("--min-seconds", callback=PositiveFloat)
    ] = None,
    max_seconds: Annotated[
        float | None,
        typer.Option("--max-seconds", help="Time cap per configuration.", callback=PositiveFloat),
    ] = None,
    stability: Annotated[
        float | None,
        typer.Option(
            "--stability",
            help="Stop when the median's 95% CI is within +-this.",
            callback=PositiveFloat,
        ),
    ] = None,
    percentiles: Annotated[
        list[str] | None,
        many(
            "--percentiles",
            "Latency percentiles to report (default: 50,90,95,99).",
            kind=float,
            rule=Percentile,
        ),
    ] = None,
    repeat: Annotated[
        int | None,
        typer.Option(
            "--repeat",
            help="Run each configuration N times; report the spread.",
            callback=PositiveInt,
        ),
    ] = None,
    server_bound_ms: Annotated[
        float | None,
        typer.Option("--server-bound-ms", help="Server mode p99 bound.", callback=PositiveFloat),
    ] = None,
    direct: Annotated[
        bool,
        typer.Option(
            "--direct/--no-direct",
            help="Also bench ONNX Runtime and OpenVINO used directly (with --backend: name "
            "ort-direct, openvino-direct in its list).",
        ),
    ] = True,
    roofline: Annotated[
        bool, typer.Option("--roofline/--no-roofline", help="Measure machine ceilings (cached).")
    ] = True,
    self_check: Annotated[
        bool,
        typer.Option(
            "--self-check", help="Also measure harness overhead and an independent process timing."
        ),
    ] = False,
    work_dir: WorkDirOpt = Path(C.DEFAULT_WORK_DIR),
    out: Annotated[
        Path | None, typer.Option("--out", help="Report directory (default: WORK_DIR/reports).")
    ] = None,
    tuned: Annotated[
        Path | None,
        typer.Option(
            "--tuned",
            help="Bench the configuration saved by 'tune' beside the runtimes used directly with their documented throughput settings, as tune measures them (--batch adds batch sizes for both).",
        ),
    ] = None,
    triton: Annotated[
        str | None,
        typer.Option(
            "--triton", help="Bench a model served by Triton: http://HOST:PORT or grpc://HOST:PORT."
        ),
    ] = None,
    end_to_end: Annotated[
        bool,
        typer.Option(
            "--end-to-end",
            help="From image bytes to label (--inputs, default the shipped photos): each stage "
            "timed, for each backend and precision and each place the preprocessing can run.",
        ),
    ] = False,
    inputs: Annotated[
        str | None,
        typer.Option(
            "--inputs",
            help="Time inference on these real images (folder, .npy/.npz or 'shipped'), "
            "preprocessed as the model says, instead of seeded random tensors.",
        ),
    ] = None,
    triton_model: Annotated[
        str | None, typer.Option("--triton-model", help="The served model's name (with --triton).")
    ] = None,
    store: StoreOpt = None,
    fmt: FormatOpt = TableFormat.table,
) -> None:
    """Benchmark every backend x precision (the main job with no arguments) and write reports."""
    use_format(fmt)
    from alexnet_deploy import api
    from alexnet_deploy.bench.config import config_from_sources
    from alexnet_deploy.bench.pipeline import BenchOptions, unstable_rows
    from alexnet_deploy.bench.report import terminal_frame

    values = lambda given: tuple(given or ())  # noqa: E731
    matrix_flags = {
        "backends": values(backend),
        "precisions": values(precision),
        "batches": values(batch),
        "modes": values(mode),
        "threads": values(threads),
        "streams": values(streams),
        "quantizers": values(quantizer),
        "statics": (True,) if static else (),
        "float_precisions": (float_precision.value,) if float_precision else (),
        "server_latency_bound_ms": server_bound_ms,
    }
    if tuned is not None:
        from alexnet_deploy.bench.tune import tuned_choice, tuned_matrix_flags

        choice = tuned_choice(tuned)
        matrix_flags = tuned_matrix_flags(choice, matrix_flags)
    rule_flags = {
        "warmup_iterations": warmup_iterations,
        "warmup_seconds": warmup_seconds,
        "min_iterations": min_iterations,
        "min_seconds": min_seconds,
        "max_seconds": max_seconds,
        "stability": stability,
        "percentiles": values(percentiles) or None,
        "repeat": repeat,
    }
    config = config_from_sources(config_file, matrix_flags, rule_flags)
    from alexnet_deploy.bench.report import check_report_dir

    check_report_dir(out or WorkDir(work_dir).reports, work_dir, end_to_end=end_to_end, inputs={
        "model": model, "checkpoint": weights, "configuration": config_file, "images": data,
        "timed images": inputs, "tuned choice": tuned,
    })  # fmt: skip
    spec = check_store(store, work_dir, refused=END_TO_END_NOT_STORED if end_to_end else None)
    if end_to_end:
        from alexnet_deploy.workflow import ModelRequest

        request = ModelRequest(
            model=model, variant=variant.value, weights=weights, seed=seed, data=data
        )
        _end_to_end(request, config, inputs or "shipped", work_dir, out)
        return
    served = None
    if triton is not None:
        from alexnet_deploy.errors import UsageError
        from alexnet_deploy.serve.triton_client import connect, perf_analyzer_command

        if not triton_model:
            raise UsageError("--triton needs --triton-model NAME")
        served = connect(triton, triton_model)
        direct, roofline = False, False
        for size in config.matrix.batches:
            for concurrency in config.matrix.streams:
                out_console.print(
                    f"perf_analyzer equivalent: {perf_analyzer_command(served, size, concurrency or 1)}",
                    highlight=False,
                    soft_wrap=True,
                )
    extras, search = [], None
    if self_check:
        from alexnet_deploy.bench.selfcheck import self_check_comparisons

        extras.append(self_check_comparisons)
    if tuned is not None:  # beside the runtimes used directly as tune measured them
        from alexnet_deploy.bench.direct_tput import with_documented_peers as search
        from alexnet_deploy.bench.tune import tuned_comparison

        extras.append(lambda _model, rows: tuned_comparison(choice, rows))

    def extra(model_path, rows) -> dict:
        found = {}
        for compare in extras:
            found.update(compare(model_path, rows))
        return found

    with bench_progress() as bar:
        status_task = bar.add_task("preparing", total=None)

        def stage(msg: str) -> None:
            bar.update(status_task, description=msg)

        report, result, paths = api.bench(
            model,
            config,
            data=data,
            seed=seed,
            work_dir=work_dir,
            out=out,
            variant=variant.value,
            weights=weights,
            options=BenchOptions(
                inputs=inputs,
                direct=direct,
                roofline=roofline,
                served=served,
                extra_comparisons=extra,
                search=search,
            ),
            progress=stage,
            progress_bar=bar,
        )
        bar.remove_task(status_task)
    print_table(
        terminal_frame(result.rows),
        f"alexnet-deploy bench of {report['model'].get('name', 'the model')} ({report['status']})",
        note_where=f"every column in {paths['csv']}" if "csv" in paths else "",
    )
    for item in report["comparisons"].values():
        out_console.print(f"  {item['text']}", highlight=False)
    if report["model"]["weights"] == "untrained":
        err_console.print(
            "Note: untrained weights: the fidelity columns compare an untrained network, which says "
            "little; pass --weights CHECKPOINT (the model's trained state_dict) for real figures."
        )
    unstable = unstable_rows(result.rows)
    for row in unstable:
        err_console.print(
            f"Warning: unstable: {row.label}: {row.instability}",
            highlight=False,
            soft_wrap=True,
        )
    if unstable:
        from alexnet_deploy.bench.stats import UNSTABLE_CAUSE, UNSTABLE_HINT

        err_console.print(
            f"  {len(unstable)} row(s) unstable: likely cause: {UNSTABLE_CAUSE}; {UNSTABLE_HINT}.",
            highlight=False,
            soft_wrap=True,
        )
    for row in result.failed:
        err_console.print(
            f"Failed: {row.label}: {row.reason}",
            highlight=False,
        )
    for item in result.not_measured:  # refused before any work: asked for, not run
        err_console.print(
            f"Not measured: {item.line()}", highlight=False, markup=False, soft_wrap=True
        )
    out_dir = out or WorkDir(work_dir).reports
    if paths:
        out_console.print("reports: " + ", ".join(str(p) for p in paths.values()), highlight=False)
    if result.interrupted:
        err_console.print(
            "Interrupted: the finished rows were written."
            if paths
            else f"Interrupted before any configuration finished: the previous report in {out_dir} is untouched."
        )
        raise typer.Exit(130)
    append_report(spec, out_dir, "bench")  # a failed configuration is stored as failed
    if result.failed:
        raise typer.Exit(EXIT_PARTIAL)


def _end_to_end(request, config, inputs: str, work_dir: Path, out: Path | None) -> None:
    from alexnet_deploy.bench.end_to_end import end_to_end_frame
    from alexnet_deploy.workflow import end_to_end_model

    with status("end to end") as shown:
        rows, paths, left_out = end_to_end_model(
            request, config, inputs, work_dir, out or WorkDir(work_dir).reports,
            progress=shown.update,
        )  # fmt: skip
    print_table(
        end_to_end_frame(rows),
        "alexnet-deploy bench --end-to-end: image bytes to label",
        note_where=f"every column in {paths['csv']}",
    )
    for item in left_out:  # a placement this model cannot have, with why
        err_console.print(
            f"Not measured: {item.line()}", highlight=False, markup=False, soft_wrap=True
        )
    out_console.print("reports: " + ", ".join(str(p) for p in paths.values()), highlight=False)
