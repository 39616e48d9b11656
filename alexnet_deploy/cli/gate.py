"""gate: the CI regression gate. Parses the command line into a GateRequest, calls the gate
library (gate/modes.py decides the mode: history, ratios or paired) and renders its result."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from alexnet_deploy import constants as C
from alexnet_deploy.cli.console import out_console, print_table, status, use_format
from alexnet_deploy.cli.options import (
    FormatOpt,
    NonNegativeInt,
    Percent,
    PositiveInt,
    WorkDirOpt,
    many,
)
from alexnet_deploy.cli.store import StoreOpt
from alexnet_deploy.render import TableFormat

# Options removed with the modes that did not earn their place (issue #24): each given is one
# 'Error:' line naming what replaces it (exit 2), never silently ignored.
AA_MOVED = (
    "A/A trials, which derive a paired gate's threshold, run in scripts/gate-evaluation "
    "(--model M.onnx --backend B --precision P --batch N --trials 20)"
)
REMOVED = {
    "--aa": f"gate --aa was removed: {AA_MOVED}",
    **{
        flag: f"gate {flag} was an option of the removed --aa: {AA_MOVED}"
        for flag in ("--trials", "--backend", "--precision", "--batch")
    },
}


def _removed(param: typer.CallbackParam, value):
    if value not in (None, False):
        from alexnet_deploy.errors import UsageError

        raise UsageError(REMOVED[param.opts[0]], hint="docs/ci-gate.md lists the gate's modes")
    return value


def _gone(flag: str):
    return typer.Option(flag, hidden=True, callback=_removed)


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
        many(
            "--threshold",
            "Fraction for every metric (0.1), per metric (p99=0.2), or both (a metric named "
            "takes its own).",
        ),
    ] = None,
    top1_budget: Annotated[
        float,
        typer.Option(
            "--top1-budget", help="Top-1 agreement points that may be lost.", callback=Percent
        ),
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
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            help="The current FP32 model: with BASELINE and no CURRENT report, gate in paired "
            "mode (its engines and the baseline's measured interleaved).",
        ),
    ] = None,
    paired: Annotated[
        bool,
        typer.Option(
            "--paired",
            help="Measure the baseline's engines and --model's (default: the main job's export) "
            "interleaved in this process (the evaluated setting) instead of comparing two reports.",
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
            help="Add RUNS separate runs of the baseline to its history: its configurations "
            "benched RUNS more times now, their run-to-run spread stored with the baseline "
            "(gate-noise.json); gates against it then use "
            f"{C.NOISE_SAFETY_FACTOR:g}x that spread as their threshold where it is above the "
            f"one asked for. Use {C.NOISE_RUNS} or more. With CURRENT (or --run), CURRENT is "
            "then judged against BASELINE with those thresholds.",
            callback=NonNegativeInt,
        ),
    ] = 0,
    history: Annotated[
        str | None,
        typer.Option(
            "--history",
            metavar="STORE|DIR",
            help="The past runs to judge CURRENT (or --run) against, instead of BASELINE: a "
            "results store (a .sqlite file, postgresql://..., or 'default') gives each "
            "configuration's last --last runs of this machine class (CPU class and model) and "
            "names the commit where a step came in; a directory of reports is BASELINE as "
            "before.",
        ),
    ] = None,
    last: Annotated[
        int | None,
        typer.Option(
            "--last",
            metavar="N",
            help=f"--history STORE: the stored runs per configuration judged with "
            f"(default {C.GATE_HISTORY_RUNS}, at most {C.GATE_HISTORY_MAX_RUNS}).",
            callback=PositiveInt,
        ),
    ] = None,
    store: StoreOpt = None,
    work_dir: WorkDirOpt = Path(C.DEFAULT_WORK_DIR),
    fmt: FormatOpt = TableFormat.table,
    aa: Annotated[bool, _gone("--aa")] = False,
    trials: Annotated[str | None, _gone("--trials")] = None,
    backend: Annotated[str | None, _gone("--backend")] = None,
    precision: Annotated[str | None, _gone("--precision")] = None,
    batch: Annotated[str | None, _gone("--batch")] = None,
) -> None:
    """Compare a bench report with a baseline: exit 0 pass, 1 regression, 2 usage error or nothing comparable."""
    use_format(fmt)
    from alexnet_deploy.errors import UsageError
    from alexnet_deploy.gate import modes
    from alexnet_deploy.gate.thresholds import Thresholds

    if history is not None:  # its one report argument is CURRENT
        if current is not None:
            raise UsageError(
                "--history is the baseline: pass one CURRENT report with it, not two",
                hint="alexnet-deploy gate --history STORE CURRENT (or --run)",
            )
        baseline, current = None, baseline
        from alexnet_deploy.gate.store_history import is_store

        if is_store(history):
            given = {"--ratios": ratios, "--paired": paired, "--model": model,
                     "--baseline-model": baseline_model, "--require-paired": require_paired,
                     "--measure-noise": measure_noise, "--update-baseline": update_baseline,
                     "--allow-env-mismatch": allow_env_mismatch}  # fmt: skip
            from alexnet_deploy.cli.gate_store import gate_store

            return gate_store(
                history, current, run_now, last, store, threshold or [], top1_budget,
                {"--json": json_out, "--md": md_out, "--junit": junit_out}, strict, work_dir,
                [flag for flag, value in given.items() if value], fmt,
            )  # fmt: skip
        baseline = Path(history)
    if last is not None:
        raise UsageError("--last counts the runs of a results store", hint="gate --history STORE")
    if baseline is None:
        raise UsageError(
            "gate needs a BASELINE report",
            hint="alexnet-deploy gate BASELINE CURRENT, or BASELINE --run, or BASELINE --model M.onnx",
        )
    request = modes.GateRequest(
        baseline, current, run=run_now, ratios=ratios, paired=paired, model=model,
        baseline_model=baseline_model, require_paired=require_paired,
        measure_noise=measure_noise, thresholds=Thresholds.parse(threshold or [], top1_budget),
        allow_env_mismatch=allow_env_mismatch, update_baseline=update_baseline, work_dir=work_dir,
    )  # fmt: skip
    from alexnet_deploy.gate.output import write_outputs
    from alexnet_deploy.workflow import gate_makers

    modes.check_gate_outputs(request, {"--json": json_out, "--md": md_out, "--junit": junit_out})
    from alexnet_deploy.cli.gate_result import after_verdict, raise_store_failure, show_result
    from alexnet_deploy.cli.store import GATE_WITHOUT_RUN_NOT_STORED, append_report, check_store

    spec = check_store(store, work_dir, refused=None if run_now else GATE_WITHOUT_RUN_NOT_STORED)
    if update_baseline and not baseline.exists() and current is not None:
        modes.accept_current(request)  # a first baseline
        out_console.print(f"baseline {baseline} created from {current}", highlight=False)
        return
    if request.measure_only:
        with status("run-to-run noise") as shown:
            spread, path = modes.measure_noise(
                request, gate_makers(work_dir, shown.update), progress=shown.update
            )
        _show_noise(spread, path)
        out_console.print(
            "no report judged: pass CURRENT (or --run) to gate it against this noise",
            highlight=False,
            soft_wrap=True,
        )
        return
    with status("gate") as shown:
        result = modes.run_gate(
            request, gate_makers(work_dir, shown.update), progress=shown.update,
            on_noise=_show_noise,
        )  # fmt: skip
    code = show_result(result, strict, fmt)
    write_outputs(result, json_out, md_out, junit_out)
    # a store failure neither skips --update-baseline nor hides a regression (exit 1 stays 1)
    failed = after_verdict(lambda: append_report(spec, request.current_report(), "gate"))
    if update_baseline:  # accepted whatever the verdict; the exit code still says it
        source = modes.accept_current(request)
        out_console.print(
            f"baseline {baseline} updated from {source}", highlight=False, soft_wrap=True
        )
    raise_store_failure(failed, code)
    if code:
        raise typer.Exit(code)


def _show_noise(spread, path: Path) -> None:
    import polars as pl

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
