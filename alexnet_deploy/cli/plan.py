"""plan: the fastest per-layer precision plan within an accuracy budget."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from alexnet_deploy import constants as C
from alexnet_deploy.cli.console import err_console, out_console, print_frame, status, use_format
from alexnet_deploy.cli.options import (
    BatchSizeOpt,
    CalibSizeOpt,
    DataOpt,
    EvalDataOpt,
    EvalSizeOpt,
    ForceOpt,
    FormatOpt,
    LabelsOpt,
    MaxDropOpt,
    MethodChoice,
    ModelArg,
    PositiveFloat,
    PositiveInt,
    SeedOpt,
    WorkDirOpt,
    check_order,
    many,
)
from alexnet_deploy.cli.store import StoreOpt, append_run, check_store
from alexnet_deploy.render import TableFormat


def plan(
    model: ModelArg,
    data: DataOpt = "shipped",
    eval_data: EvalDataOpt = None,
    calib_size: CalibSizeOpt = None,
    eval_size: EvalSizeOpt = None,
    labels: LabelsOpt = None,
    seed: SeedOpt = C.DEFAULT_SEED,
    batch_size: BatchSizeOpt = C.CALIBRATION_BATCH_SIZE,
    max_top1_drop: MaxDropOpt = C.DEFAULT_MAX_TOP1_DROP,
    method: Annotated[
        MethodChoice,
        typer.Option(
            "--method",
            help="Calibration range method; auto calibrates with each and plans with the one "
            "whose all-INT8 file is most faithful (a wrong range can cost more than any layer).",
        ),
    ] = MethodChoice.minmax,
    target: Annotated[
        str,
        typer.Option(
            "--target",
            help="The INT8 form planned for: cpu (this CPU's class; plans are timed here), "
            "cpu-<class>, or tensorrt (emulated fidelity only; chosen by fewest float MACs).",
        ),
    ] = "cpu",
    backend: Annotated[
        list[str] | None,
        many(
            "--backend",
            "Runtime(s) that time the plans: ort (default), openvino (default for --keep bf16).",
        ),
    ] = None,
    batch: Annotated[
        list[str] | None,
        many(
            "--batch",
            "Batch size(s) the plans are timed at (default: 1 and 32).",
            kind=int,
            rule=PositiveInt,
        ),
    ] = None,
    keep: Annotated[
        str,
        typer.Option(
            "--keep",
            help="What a layer kept out of INT8 runs in: fp32, fp16, or bf16 (OpenVINO's precision "
            "hint on the plan's file, a CPU with native BF16; all-BF16 timed beside all-FP32).",
        ),
    ] = "fp32",
    keep_layer: Annotated[
        list[str] | None, many("--keep-layer", "Weight layers always kept float.")
    ] = None,
    exhaustive: Annotated[
        bool,
        typer.Option(
            "--exhaustive",
            help=f"Evaluate all 2^n plans (at most {C.PLAN_EXHAUSTIVE_MAX_LAYERS} free layers; "
            "default: the greedy search).",
        ),
    ] = False,
    max_candidates: Annotated[
        int,
        typer.Option(
            "--max-candidates",
            help="Greedy plans to evaluate, at most (a layer per step; past "
            f"{C.PLAN_PER_LAYER_MAX} layers a block per step).",
            callback=PositiveInt,
        ),
    ] = C.PLAN_MAX_CANDIDATES,
    time_budget: Annotated[
        float,
        typer.Option(
            "--time-budget",
            help="Seconds the search may take (sensitivity and candidates; timing the chosen "
            "plans comes after); what it leaves is reported.",
            callback=PositiveFloat,
        ),
    ] = C.PLAN_TIME_BUDGET_S,
    max_measured: Annotated[
        int,
        typer.Option(
            "--max-measured",
            help="Plans within the budget to time, at most.",
            callback=PositiveInt,
        ),
    ] = C.PLAN_MAX_MEASURED,
    repeat: Annotated[
        int,
        typer.Option(
            "--repeat", help="Timing rounds, interleaved across the plans.", callback=PositiveInt
        ),
    ] = C.PLAN_ROUNDS,
    max_seconds: Annotated[
        float,
        typer.Option(
            "--max-seconds",
            help="Time cap per plan, backend, batch and round.",
            callback=PositiveFloat,
        ),
    ] = C.BENCH_MAX_SECONDS,
    min_seconds: Annotated[
        float,
        typer.Option(
            "--min-seconds",
            help="Time each plan at least this long per round.",
            callback=PositiveFloat,
        ),
    ] = C.BENCH_MIN_SECONDS,
    nncf: Annotated[
        bool,
        typer.Option(
            "--nncf/--no-nncf", help="Also run NNCF's quantize_with_accuracy_control (the peer)."
        ),
    ] = False,
    sufficiency: Annotated[
        bool,
        typer.Option(
            "--sufficiency",
            help="Also bootstrap calibration subsets: the smallest calibration set within the "
            "budget, and whether calibration and held-out images look alike.",
        ),
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--out",
            help="Directory for the plan file and plan.json/.csv/.md (default: "
            "WORK_DIR/reports/plan-STEM).",
        ),
    ] = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write drop against images/s (PNG).")
    ] = None,
    work_dir: WorkDirOpt = Path(C.DEFAULT_WORK_DIR),
    store: StoreOpt = None,
    force: ForceOpt = False,
    fmt: FormatOpt = TableFormat.table,
) -> None:
    """Per-layer INT8 sensitivity, candidate plans with their emulated fidelity, the plans that
    meet the budget timed with bench's rules; writes the fastest within the budget."""
    use_format(fmt)
    check_order(min_seconds, max_seconds, "--min-seconds", "--max-seconds")
    from alexnet_deploy import api
    from alexnet_deploy.artifacts import WorkDir
    from alexnet_deploy.bench.config import MeasureRules
    from alexnet_deploy.calib.stage import DataRequest
    from alexnet_deploy.precision.plan_report import (
        as_json,
        chosen_name,
        plans_frame,
        sensitivity_frame,
        sensitivity_note,
        sufficiency_frame,
        write_plan_report,
    )
    from alexnet_deploy.precision.planner import PlanRequest, default_backends

    out = out or WorkDir(work_dir).plan_reports(model)
    request = PlanRequest(
        target=target, backends=tuple(backend or default_backends(keep)),
        batches=tuple(batch or C.PLAN_BATCHES), max_top1_drop=max_top1_drop, keep=keep,
        keep_layers=tuple(keep_layer or ()), exhaustive=exhaustive, max_measured=max_measured,
        max_candidates=max_candidates, time_budget_s=time_budget, rounds=repeat, nncf=nncf, sufficiency=sufficiency, method=method.value,
    )  # fmt: skip
    data_request = DataRequest(
        data=data, calib_size=calib_size, eval_size=eval_size, seed=seed, labels=labels,
        eval_data=eval_data, batch_size=batch_size,
    )  # fmt: skip
    rules = MeasureRules(min_seconds=min_seconds, max_seconds=max_seconds)
    spec = check_store(store, work_dir)
    with status("planning") as shown:
        outcome = api.plan(
            model, data_request, request, out=out, work_dir=work_dir, rules=rules, force=force,
            plot=plot, progress=shown.update,
        )  # fmt: skip
    paths = write_plan_report(outcome, out)
    if fmt is TableFormat.json:  # stdout: the JSON alone (use_format sends the rest to stderr)
        sys.stdout.write(json.dumps(as_json(outcome), indent=2) + "\n")
    else:
        most = C.TABLE_TOP_LAYERS if fmt is TableFormat.table else None  # a terminal's table
        print_frame(
            sensitivity_frame(outcome, most), fmt,
            title=f"{outcome.model_name}: sensitivity per weight layer",
        )  # fmt: skip
        if most and sensitivity_note(outcome, most):
            err_console.print(sensitivity_note(outcome, most), highlight=False, soft_wrap=True)
        print_frame(
            plans_frame(outcome, measured_only=True), fmt,
            title=f"plans timed (of {len(outcome.evaluated)} evaluated; all in {paths['csv']})",
        )  # fmt: skip
        if outcome.sufficiency is not None:
            print_frame(sufficiency_frame(outcome), fmt, title="calibration sufficiency")
    for note in [f"chosen: {chosen_name(outcome)} ({outcome.choice_rule})",
                 *outcome.notes]:  # fmt: skip
        err_console.print(note, highlight=False, soft_wrap=True, markup=False)
    out_console.print(f"wrote {outcome.written}", highlight=False)
    out_console.print("wrote " + ", ".join(str(p) for p in paths.values()), highlight=False)
    if plot is not None:
        out_console.print(f"wrote {plot}", highlight=False)  # api.plan drew it
    from alexnet_deploy.store.from_plan import run_from_plan

    append_run(spec, lambda: run_from_plan(outcome, paths["json"]), kept=f"the plan in {out}")
