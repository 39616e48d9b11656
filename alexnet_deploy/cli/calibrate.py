"""calibrate, fp16 and bf16: the precision stages."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from alexnet_deploy import constants as C
from alexnet_deploy.cli.console import err_console, out_console, print_table, status, use_format
from alexnet_deploy.cli.options import (
    BatchSizeOpt,
    CalibSizeOpt,
    DataOpt,
    EvalDataOpt,
    EvalSizeOpt,
    ForceOpt,
    FormatOpt,
    InputSizeOpt,
    LabelsOpt,
    MaxDropOpt,
    MeanOpt,
    MethodChoice,
    ModelArg,
    QuantizerChoice,
    QuantizerOpt,
    ResizeSizeOpt,
    SeedOpt,
    StdOpt,
    many,
    parse_preprocessing,
)
from alexnet_deploy.errors import AlexnetDeployError
from alexnet_deploy.render import TableFormat


def calibrate(
    model: ModelArg,
    data: DataOpt = "shipped",
    eval_data: EvalDataOpt = None,
    method: Annotated[
        MethodChoice,
        typer.Option(
            "--method", help="Range method; auto tries all and keeps the most faithful per target."
        ),
    ] = MethodChoice.minmax,
    target: Annotated[
        list[str] | None,
        many(
            "--target",
            "INT8 form(s) to write (default: both): tensorrt; cpu (the form for this CPU's "
            "instruction set); cpu-vnni, cpu-avx512, cpu-avx2, cpu-arm64 or cpu-portable (another "
            "class's). 'alexnet-deploy doctor' shows this CPU's class.",
        ),
    ] = None,
    calib_size: CalibSizeOpt = None,
    eval_size: EvalSizeOpt = None,
    seed: SeedOpt = C.DEFAULT_SEED,
    batch_size: BatchSizeOpt = C.CALIBRATION_BATCH_SIZE,
    labels: LabelsOpt = None,
    max_top1_drop: MaxDropOpt = C.DEFAULT_MAX_TOP1_DROP,
    input_size: InputSizeOpt = None,
    resize_size: ResizeSizeOpt = None,
    mean: MeanOpt = None,
    std: StdOpt = None,
    output: Annotated[
        str | None,
        typer.Option(
            "-o",
            "--output",
            help="Output path; '{target}' in it is replaced (default: MODEL_DIR/STEM.int8-TARGET.onnx).",
        ),
    ] = None,
    trt_cache: Annotated[
        bool,
        typer.Option(
            "--trt-cache/--no-trt-cache", help="Also write a legacy TensorRT calibration cache."
        ),
    ] = True,
    quantizer: QuantizerOpt = QuantizerChoice.qdq,
    force: ForceOpt = False,
    fmt: FormatOpt = TableFormat.table,
) -> None:
    """Calibrate once on real images and write INT8 Q/DQ models for TensorRT and for CPUs."""
    use_format(fmt)
    from alexnet_deploy import api
    from alexnet_deploy.calib.stage import DataRequest

    request = DataRequest(
        data=data,
        calib_size=calib_size,
        eval_size=eval_size,
        seed=seed,
        labels=labels,
        eval_data=eval_data,
        preprocessing=parse_preprocessing(input_size, resize_size, mean, std),
        batch_size=batch_size,
        preprocessing_flags=True,
    )
    if quantizer is QuantizerChoice.nncf:
        _calibrate_nncf(model, request, target, method, output, max_top1_drop, force)
        return
    with status("calibrating") as shown:
        report = api.calibrate(
            model,
            request,
            method=method.value,
            targets=target,
            output=output,
            max_top1_drop=max_top1_drop,
            trt_cache=trt_cache,
            force=force,
            progress=shown.update,
        )
    _print_calibration(report)
    if report.failures:
        raise AlexnetDeployError(
            "; ".join(report.failures),
            hint="calibrate on more representative data (--data), try --method auto, or raise --max-top1-drop",
        )


def _calibrate_nncf(model, request, target, method, output, max_top1_drop, force) -> None:
    from alexnet_deploy.calib.nncf_quant import quantize_nncf
    from alexnet_deploy.errors import UsageError

    if target and list(target) != ["cpu"]:
        raise UsageError("--quantizer nncf writes the CPU form only", hint="drop --target")
    if method is not MethodChoice.minmax:
        raise UsageError("--method applies to --quantizer qdq; NNCF picks its own ranges")
    with status("quantizing with NNCF") as shown:
        report = quantize_nncf(
            model,
            request,
            output=Path(output) if output else None,
            max_top1_drop=max_top1_drop,
            force=force,
            progress=lambda msg: shown.update(msg),
        )
    f = report.fidelity
    out_console.print(
        f"NNCF {report.nncf_version} INT8 against FP32 on {f.samples} held-out samples: top-1 agreement "
        f"{f.top1_agreement:.4f}, centered cosine {f.centered_cosine:.5f}, top-1 drop "
        f"{f.top1_drop_points():.2f} points (quantized in {report.seconds:.1f} s)",
        highlight=False,
        soft_wrap=True,
    )
    out_console.print(_data_label(report.data), highlight=False)
    if report.budget_note:
        err_console.print(f"Note: {report.budget_note}", highlight=False)
    out_console.print(f"wrote nncf: {report.path}", highlight=False)


def _data_label(data) -> str:
    label = f"{data.kind} data: {data.source}; {len(data.calib)} calibration / {len(data.eval)} held-out samples"
    if data.synthetic:
        label += " [SYNTHETIC: figures say little about real images]"
    if data.skipped:
        label += f"; skipped {len(data.skipped)} unreadable file(s)"
    return label


def _print_float_tensors(by_target: dict[str, list[dict]]) -> None:
    """What each INT8 form left in float, one line per reason with its count (every tensor
    and node: the report's "float_tensors")."""
    from collections import Counter

    for target, entries in by_target.items():
        for reason, count in Counter(e["reason"] for e in entries).items():
            line = f"{target} float: {count} x {reason}"
            out_console.print(line, highlight=False, soft_wrap=True)


def _print_calibration(report) -> None:
    import polars as pl

    short = {
        "method": "method",
        "target": "target",
        "selected": "kept",
        "top1_fp32": "top1 fp32",
        "top1_int8": "top1 int8",
        "top1_agreement": "agree",
        "top5_overlap": "top5 ovl",
        "centered_cosine": "cos(c)",
        "max_abs_error": "max err",
        "top1_drop_points": "drop pts",
        "within_budget": "ok",
        "judged_on": "judged on",
        "calibration_seconds": "calib s",
    }
    frame = pl.DataFrame(report.rows()).select(list(short)).rename(short)
    print_table(frame, f"INT8 fidelity against FP32 ({report.model.name})")
    for c in report.candidates:
        if c.selected:
            figures = ", ".join(f"{basis} {f.top1_agreement:.4f}" for basis, f in c.figures.items())
            out_console.print(
                f"{c.target}: top-1 agreement {figures} (budget judged on {c.basis})",
                highlight=False,
                soft_wrap=True,
            )
    out_console.print(_data_label(report.data), highlight=False)
    _print_float_tensors(report.float_tensors)
    if any(r["entropy_equals_minmax"] for r in report.rows()):
        err_console.print(
            "Warning: entropy calibration gave the min/max ranges (too few bins or samples)."
        )
    if report.budget_note:
        err_console.print(f"Note: {report.budget_note}", highlight=False)
    for target, path in report.artifacts.items():
        out_console.print(f"wrote {target}: {path}", highlight=False)
    if report.trt_cache:
        out_console.print(
            f"wrote legacy TensorRT calibration cache: {report.trt_cache}", highlight=False
        )
    out_console.print(f"report: {report.report_path}", highlight=False)


HalfOutputOpt = Annotated[
    Path | None,
    typer.Option(
        "-o", "--output", help="The artifact (default: MODEL_DIR/STEM.fp16.onnx, STEM.bf16.onnx)."
    ),
]


def _half_command(precision: str, summary: str):
    """The command that writes one 16-bit float artifact (``fp16``, ``bf16``): the same flags,
    stage (calib/fp16.py's ``convert_half``) and report."""

    def command(
        model: ModelArg,
        data: DataOpt = "shipped",
        eval_size: EvalSizeOpt = None,
        seed: SeedOpt = C.DEFAULT_SEED,
        batch_size: BatchSizeOpt = C.CALIBRATION_BATCH_SIZE,
        labels: LabelsOpt = None,
        max_top1_drop: MaxDropOpt = C.DEFAULT_MAX_TOP1_DROP,
        input_size: InputSizeOpt = None,
        resize_size: ResizeSizeOpt = None,
        mean: MeanOpt = None,
        std: StdOpt = None,
        output: HalfOutputOpt = None,
        force: ForceOpt = False,
        fmt: FormatOpt = TableFormat.table,
    ) -> None:
        use_format(fmt)
        from alexnet_deploy.calib.stage import DataRequest

        request = DataRequest(
            data=data,
            eval_size=eval_size,
            seed=seed,
            labels=labels,
            batch_size=batch_size,
            preprocessing=parse_preprocessing(input_size, resize_size, mean, std),
            preprocessing_flags=True,
        )
        with status("converting") as shown:
            report = _convert(precision)(
                model,
                request,
                output=output,
                max_top1_drop=max_top1_drop,
                force=force,
                progress=lambda msg: shown.update(msg),
            )
        _print_half(report, model)

    command.__name__ = precision
    command.__doc__ = summary
    return command


def _convert(precision: str):
    if precision == "bf16":
        from alexnet_deploy.calib.bf16 import convert_bf16

        return convert_bf16
    from alexnet_deploy.calib.fp16 import convert_fp16

    return convert_fp16


def _print_half(report, model: Path) -> None:
    import polars as pl

    name = report.precision.upper()
    executed = {} if report.fidelity is None else report.fidelity.as_dict()
    row = {
        "precision": report.precision,
        "executed_on": report.executed_on or "-",
        **executed,
        "emulated_top1_agreement": report.emulated.top1_agreement,
        "convert_seconds": report.convert_seconds,
    }
    print_table(pl.DataFrame([row]), f"{name} fidelity against FP32 ({model.name})")
    out_console.print(_data_label(report.data), highlight=False)
    if report.not_executed:
        err_console.print(f"Note: as executed: not measured: {report.not_executed}")
    if report.budget_note:
        err_console.print(f"Note: {report.budget_note}", highlight=False)
    if report.failures:
        raise AlexnetDeployError(
            "; ".join(report.failures), hint="keep more ops in FP32 or raise --max-top1-drop"
        )
    kept = ", ".join(report.kept_fp32_ops)  # those of C.FP16_KEEP_FP32_OPS the graph has
    out_console.print(
        f"wrote {report.output} ({f'ops kept in FP32: {kept}' if kept else 'no op kept in FP32'})",
        highlight=False,
    )


fp16 = _half_command(
    "fp16", "Convert to FP16 (float32 inputs/outputs kept) and measure its fidelity against FP32."
)
bf16 = _half_command(
    "bf16",
    "Convert to BF16 for TensorRT (float32 inputs/outputs kept, LRN in FP32) and measure its "
    "fidelity against FP32: emulated, and as executed in bf16 on this CPU where it has BF16.",
)
