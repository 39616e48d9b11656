"""gate: the CI regression gate."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from alexnet_deploy import constants as C
from alexnet_deploy.cli.console import err_console, out_console, print_table, status, use_format
from alexnet_deploy.cli.options import BackendChoice, FormatOpt, PrecisionChoice, WorkDirOpt
from alexnet_deploy.render import TableFormat


def gate(
    baseline: Annotated[
        Path | None,
        typer.Argument(
            help="Baseline: a bench report (file or directory), a directory of past reports, or a ratio baseline."
        ),
    ] = None,
    current: Annotated[
        Path | None, typer.Argument(help="Current bench report (or use --run).")
    ] = None,
    run_now: Annotated[
        bool,
        typer.Option(
            "--run", help="Bench the baseline's configurations now as the current report."
        ),
    ] = False,
    ratios: Annotated[
        bool,
        typer.Option(
            "--ratios",
            help="Gate on in-run ratios (INT8 vs FP32, engine vs direct): machine-independent.",
        ),
    ] = False,
    threshold: Annotated[
        list[str] | None,
        typer.Option(
            "--threshold", help="Fraction for every metric (0.1) or per metric (p99=0.2)."
        ),
    ] = None,
    top1_budget: Annotated[
        float, typer.Option("--top1-budget", help="Top-1 agreement points that may be lost.")
    ] = C.GATE_TOP1_BUDGET_POINTS,
    allow_env_mismatch: Annotated[
        bool,
        typer.Option(
            "--allow-env-mismatch", help="Compare absolute timings across environments (flagged)."
        ),
    ] = False,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Fail (exit 2) when any check is not comparable or inconclusive (worse beyond "
            "the threshold, but too noisy to call).",
        ),
    ] = False,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the result as JSON.")
    ] = None,
    md_out: Annotated[
        Path | None,
        typer.Option(
            "--md", help="Write a Markdown summary (also appended to $GITHUB_STEP_SUMMARY)."
        ),
    ] = None,
    junit_out: Annotated[Path | None, typer.Option("--junit", help="Write JUnit XML.")] = None,
    update_baseline: Annotated[
        bool,
        typer.Option(
            "--update-baseline", help="Accept the current results as the new baseline (atomically)."
        ),
    ] = False,
    aa: Annotated[
        bool,
        typer.Option(
            "--aa", help="A/A mode: measure one configuration against itself to see the noise."
        ),
    ] = False,
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            help="The current FP32 model: with BASELINE and no CURRENT report, gate in paired "
            "mode (its engines and the baseline's measured interleaved); A/A: the model "
            "(default: the main job's export).",
        ),
    ] = None,
    backend: Annotated[
        BackendChoice, typer.Option("--backend", help="A/A: backend.")
    ] = BackendChoice.ort,
    precision: Annotated[
        PrecisionChoice, typer.Option("--precision", help="A/A: precision.")
    ] = PrecisionChoice.fp32,
    batch: Annotated[int, typer.Option("--batch", help="A/A: batch size.")] = 1,
    trials: Annotated[int, typer.Option("--trials", help="A/A: number of paired trials.")] = 10,
    paired: Annotated[
        bool,
        typer.Option(
            "--paired",
            help="Measure the baseline's engines and --model's interleaved in this process "
            "(the evaluated setting) instead of comparing two reports.",
        ),
    ] = False,
    baseline_model: Annotated[
        Path | None,
        typer.Option("--baseline-model", help="Paired: the baseline's FP32 model, if moved."),
    ] = None,
    require_paired: Annotated[
        bool,
        typer.Option("--require-paired", help="Paired: exit 2 rather than fall back to unpaired."),
    ] = False,
    measure_noise: Annotated[
        int,
        typer.Option(
            "--measure-noise",
            metavar="RUNS",
            help="Bench the baseline's configurations RUNS more times as separate runs now and "
            "store their run-to-run spread with the baseline (gate-noise.json); unpaired gates "
            f"against it then use {C.NOISE_SAFETY_FACTOR:g}x that spread as their threshold "
            f"where it is above the one asked for. Use {C.NOISE_RUNS} or more.",
        ),
    ] = 0,
    work_dir: WorkDirOpt = Path(C.DEFAULT_WORK_DIR),
    fmt: FormatOpt = TableFormat.table,
) -> None:
    """Compare a bench report with a baseline: exit 0 pass, 1 regression, 2 usage error or nothing comparable."""
    use_format(fmt)
    from alexnet_deploy.errors import UsageError
    from alexnet_deploy.gate.compare import Thresholds

    thresholds = Thresholds.parse(threshold or [], top1_budget)
    if paired and update_baseline:
        raise UsageError("--update-baseline takes a CURRENT report; --paired measures none")
    if aa:
        _gate_aa(model, backend.value, precision.value, batch, trials, thresholds, work_dir)
        return
    if baseline is None:
        raise UsageError(
            "gate needs a BASELINE report",
            hint="alexnet-deploy gate BASELINE CURRENT, or --run, or --aa",
        )
    from alexnet_deploy.gate.baseline import accept_baseline
    from alexnet_deploy.gate.compare import (
        INCONCLUSIVE,
        NOT_COMPARABLE,
        NOT_JUDGED,
        REGRESSED,
        compare_reports,
    )
    from alexnet_deploy.gate.output import check_output_paths, result_frame, write_outputs
    from alexnet_deploy.gate.ratios import compare_ratios
    from alexnet_deploy.gate.reports import load_report

    check_output_paths(json_out, md_out, junit_out)

    if update_baseline and not baseline.exists() and current is not None:
        accept_baseline(baseline, load_report(current), ratios)  # a first baseline
        out_console.print(f"baseline {baseline} created from {current}", highlight=False)
        return
    base = load_report(baseline)
    if measure_noise:
        _measure_noise(base, measure_noise, work_dir)
        return
    result = None
    # paired is the default where it can be had: a current model given, no current report
    paired = paired or (model is not None and current is None and not run_now)
    if paired:
        result = _gate_paired(
            base, baseline_model, model, thresholds, work_dir, require_paired, current is None
        )
    if result is None and run_now:
        with status("benching the baseline's configurations"):
            from alexnet_deploy.workflow import rerun_baseline

            current = rerun_baseline(base, work_dir)
    cur = None
    if result is None:
        if current is None:
            raise UsageError(
                "gate needs a CURRENT report",
                hint="pass it, or --run to bench the baseline's configurations now, or --paired",
            )
        cur = load_report(current)
        if base.is_history and len(cur.environment_keys) == 1:
            # a history keeps the reports of the current's environment; the rest are listed
            base = load_report(baseline, environment_key=next(iter(cur.environment_keys)))
        if ratios or base.ratios:
            result = compare_ratios(base, cur, thresholds.values["p50"])
        else:
            result = compare_reports(
                base,
                cur,
                thresholds,
                allow_env_mismatch=allow_env_mismatch,
                mode="rerun" if run_now else None,
            )
    frame = result_frame(result)
    if frame.height:
        print_table(frame.drop("note"), "alexnet-deploy gate")
    for verdict in result.verdicts:
        if verdict.note and verdict.verdict in (
            REGRESSED,
            INCONCLUSIVE,
            NOT_COMPARABLE,
            NOT_JUDGED,
        ):
            out_console.print(
                f"  {verdict.config} {verdict.metric}: {verdict.note}",
                highlight=False,
                soft_wrap=True,
            )
    for note in result.notes:
        err_console.print(f"[bold yellow]{escape(note)}[/]", soft_wrap=True)
    skipped = len(result.unsettled)
    if skipped and result.comparable:
        err_console.print(
            f"Warning: {skipped} check(s) not comparable or inconclusive (listed above); "
            "--strict fails on them.",
            soft_wrap=True,
        )
    code = result.exit_code
    summary = result.summary()
    if strict and code == 0 and skipped:
        code = 2  # --strict: a check that could not be compared fails, and the line says so
        summary = (
            f"gate FAIL (--strict): {skipped} check(s) not comparable or inconclusive; "
            + summary.split(": ", 1)[-1]
        )
    out_console.print(summary, highlight=False, soft_wrap=True)
    write_outputs(result, json_out, md_out, junit_out)
    if update_baseline:
        accept_baseline(baseline, cur, ratios or bool(base.ratios))
        out_console.print(f"baseline {baseline} updated from {current}", highlight=False)
        return
    if code:
        raise typer.Exit(code)


def _gate_aa(
    model, backend: str, precision: str, batch: int, trials: int, thresholds, work_dir: Path
) -> None:
    import numpy as np

    from alexnet_deploy.gate.noise import derive_threshold
    from alexnet_deploy.workflow import aa_on_model

    threshold = thresholds.values["p50"]
    with status("A/A trials") as shown:
        outcomes = aa_on_model(
            model,
            backend,
            precision,
            batch,
            trials,
            threshold,
            work_dir,
            on_trial=lambda i, o: shown.update(
                f"A/A trial {i + 1}/{trials}: {100 * o.change:+.2f}%"
            ),
        )
    changes = np.abs([o.change for o in outcomes])
    out_console.print(
        f"A/A {backend} {precision} batch {batch}, {trials} paired trials: p50 change median "
        f"{100 * np.median(changes):.2f}%, max {100 * changes.max():.2f}%; false alarms at the "
        f"{threshold:.0%} threshold: {sum(o.flagged for o in outcomes)}/{trials}; derived threshold: "
        f"{derive_threshold(outcomes):.1%}",
        highlight=False,
        soft_wrap=True,
    )


def _measure_noise(base, runs: int, work_dir: Path) -> None:
    import polars as pl

    from alexnet_deploy.workflow import measure_run_noise

    with status("run-to-run noise") as shown:
        spread, path = measure_run_noise(base, runs, work_dir, progress=shown.update)
    frame = pl.DataFrame(
        [
            {
                "config": label,
                **{f"{metric} spread %": round(100 * v, 2) for metric, v in metrics.items()},
                **{
                    f"{metric} threshold %": round(100 * spread.threshold(label, metric, 0), 1)
                    for metric in metrics
                },
            }
            for label, metrics in spread.by_config.items()
        ]
    )
    print_table(frame, f"run-to-run noise over {spread.runs} separate runs")
    out_console.print(f"stored with the baseline: {path}", highlight=False, soft_wrap=True)


def _gate_paired(base, baseline_model, model, thresholds, work_dir, required: bool, alone: bool):
    from alexnet_deploy.workflow import paired_gate_or_fallback

    with status("paired") as shown:
        result, why = paired_gate_or_fallback(
            base, baseline_model, model, work_dir, thresholds.values["p50"],
            required=required or alone, progress=shown.update,
        )  # fmt: skip
    if why:
        err_console.print(f"Warning: {why}: comparing the reports unpaired instead", soft_wrap=True)
    return result
