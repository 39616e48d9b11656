"""The ``alexnet-deploy`` command line: a thin layer over the library.

Commands only parse options, call one library function and render its result. Heavy modules
(torch, onnx, onnxruntime) are imported inside the commands so that ``--help`` is instant.
User errors (:class:`AlexnetDeployError`) become ``Error: ...`` on stderr with a hint and exit
code 1 (2 for usage errors), in :func:`run`, the one place that maps them.
"""

from __future__ import annotations

import os
import sys
import traceback
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from alexnet_deploy import constants as C
from alexnet_deploy.errors import AlexnetDeployError
from alexnet_deploy.models.variants import DEFAULT_VARIANT
from alexnet_deploy.render import TableFormat

app = typer.Typer(
    name="alexnet-deploy",
    help="Take AlexNet from PyTorch to inference engines, and prove how fast and faithful they are.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

out_console = Console()
err_console = Console(stderr=True)


class VariantChoice(str, Enum):
    torchvision = "torchvision"
    paper = "paper"


VariantOpt = Annotated[
    VariantChoice,
    typer.Option(
        "--variant", help="torchvision (loads torchvision weights) or paper (2012 network)."
    ),
]
FormatOpt = Annotated[TableFormat, typer.Option("--format", help="Output format.")]
SeedOpt = Annotated[
    int, typer.Option("--seed", help="Seed for untrained weights and validation inputs.")
]


@app.callback()
def _root(
    debug: Annotated[
        bool,
        typer.Option("--debug", help=f"Show tracebacks for errors (or set {C.DEBUG_ENV_VAR}=1)."),
    ] = False,
) -> None:
    """Take AlexNet from PyTorch to inference engines, and prove how fast and faithful they are."""


def _print_frame(frame, fmt: TableFormat, title: str) -> None:
    from alexnet_deploy.render import frame_as_text, rich_table

    if fmt is TableFormat.table:
        out_console.print(rich_table(frame, title=title))
    else:
        sys.stdout.write(frame_as_text(frame, fmt))


@app.command()
def summary(
    variant: VariantOpt = VariantChoice(DEFAULT_VARIANT), fmt: FormatOpt = TableFormat.table
) -> None:
    """Per-layer table of a variant: output shape (C x H x W), parameters, MACs, totals."""
    from alexnet_deploy.models.summary import layer_table
    from alexnet_deploy.models.variants import get_variant

    spec = get_variant(variant.value)
    _print_frame(layer_table(spec), fmt, title=f"AlexNet ({spec.name}): {spec.description}")


@app.command()
def export(
    variant: VariantOpt = VariantChoice(DEFAULT_VARIANT),
    weights: Annotated[
        Path | None,
        typer.Option(
            "--weights",
            help="State-dict checkpoint (torch.save(model.state_dict())). "
            "Without it, weights are initialized from --seed and labelled untrained.",
        ),
    ] = None,
    seed: SeedOpt = C.DEFAULT_SEED,
    opset: Annotated[
        int, typer.Option("--opset", help=f"ONNX opset, {C.MIN_OPSET} to {C.MAX_OPSET}.")
    ] = C.DEFAULT_OPSET,
    softmax: Annotated[
        bool, typer.Option("--softmax", help=f"Also output softmax as '{C.PROBABILITIES_NAME}'.")
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            help=f"ONNX file to write (default: {C.DEFAULT_WORK_DIR}/alexnet-VARIANT.onnx).",
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing output.")] = False,
) -> None:
    """Export a variant to ONNX (dynamic batch) and validate it against PyTorch."""
    from alexnet_deploy.exporter.config import ExportConfig
    from alexnet_deploy.exporter.pipeline import export_onnx
    from alexnet_deploy.models.variants import get_variant

    spec = get_variant(variant.value)
    config = ExportConfig(opset=opset, softmax=softmax)
    out = output or Path(C.DEFAULT_WORK_DIR) / f"alexnet-{spec.name}.onnx"
    with err_console.status("exporting") as status:
        result = export_onnx(
            spec,
            out,
            weights=weights,
            seed=seed,
            config=config,
            force=force,
            progress=lambda msg: status.update(msg),
        )
    _print_export_result(result)


def _print_export_result(result) -> None:
    import polars as pl

    from alexnet_deploy.render import rich_table

    frame = pl.DataFrame(
        [
            {
                "batch": c.batch,
                "max_abs_diff": c.max_abs_diff,
                "max_rel_diff": c.max_rel_diff,
                "top1_agreement": c.top1_agreement,
                "within_tolerance": c.within_tolerance,
            }
            for c in result.comparisons
        ]
    )
    out_console.print(rich_table(frame, title="ONNX Runtime vs PyTorch (seeded inputs)"))
    out_console.print(
        f"wrote {result.path} ({result.size_bytes / 1e6:.1f} MB, sha256 {result.sha256[:12]}), "
        f"{result.weights.label}; export {result.export_seconds:.1f} s, "
        f"validation {result.validate_seconds:.1f} s; manifest {result.manifest}"
    )


class QuantizerChoice(str, Enum):
    qdq = "qdq"
    nncf = "nncf"


QuantizerOpt = Annotated[
    QuantizerChoice,
    typer.Option(
        "--quantizer",
        help="INT8 route: qdq (this tool's calibration, Q/DQ per target) or nncf (NNCF's quantize, CPU form).",
    ),
]


class MethodChoice(str, Enum):
    minmax = "minmax"
    entropy = "entropy"
    percentile = "percentile"
    auto = "auto"


DataOpt = Annotated[
    str,
    typer.Option(
        "--data",
        help="Images folder (JPEG/PNG, recursive; class sub-folders give labels), a preprocessed "
        ".npy/.npz, 'shipped' (the bundled photos) or 'synthetic' (smoke runs only).",
    ),
]
EvalDataOpt = Annotated[
    str | None,
    typer.Option(
        "--eval-data", help="Held-out set from another source; then all of --data calibrates."
    ),
]
EvalSizeOpt = Annotated[
    int | None,
    typer.Option(
        "--eval-size", help="Held-out samples for fidelity (default: the rest, at most 512)."
    ),
]
LabelsOpt = Annotated[
    Path | None,
    typer.Option(
        "--labels", help="Labels: CSV 'relative/path.jpg,label' for a folder, or .npy of ints."
    ),
]
MaxDropOpt = Annotated[
    float,
    typer.Option(
        "--max-top1-drop", help="Fail when top-1 drops more points than this against FP32."
    ),
]
BatchSizeOpt = Annotated[
    int, typer.Option("--batch-size", help="Batch size for calibration and fidelity runs.")
]
InputSizeOpt = Annotated[
    int | None, typer.Option("--input-size", help="Crop size, for models without our metadata.")
]
ResizeSizeOpt = Annotated[
    int | None,
    typer.Option("--resize-size", help="Short-side resize, for models without our metadata."),
]
MeanOpt = Annotated[
    str | None,
    typer.Option("--mean", help="Per-channel mean 'R,G,B', for models without our metadata."),
]
StdOpt = Annotated[
    str | None,
    typer.Option("--std", help="Per-channel std 'R,G,B', for models without our metadata."),
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace existing outputs.")]
ModelArg = Annotated[Path, typer.Argument(help="FP32 ONNX model (from 'alexnet-deploy export').")]


def _preprocessing(input_size, resize_size, mean, std):
    """Explicit preprocessing for a foreign model: all four flags or none."""
    from alexnet_deploy.errors import UsageError
    from alexnet_deploy.models.variants import Preprocessing

    given = [v is not None for v in (input_size, resize_size, mean, std)]
    if not any(given):
        return None
    if not all(given):
        raise UsageError(
            "--input-size, --resize-size, --mean and --std go together", hint="pass all four"
        )

    def triple(text: str, flag: str) -> tuple[float, float, float]:
        try:
            values = tuple(float(v) for v in text.split(","))
        except ValueError:
            values = ()
        if len(values) != 3:
            raise UsageError(f"{flag} takes three comma-separated numbers, got {text!r}")
        return values  # type: ignore[return-value]

    return Preprocessing(resize_size, input_size, triple(mean, "--mean"), triple(std, "--std"))


@app.command()
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
        typer.Option(
            "--target",
            help="INT8 form(s) to write (default: both): tensorrt; cpu (the form for this CPU's "
            "instruction set); cpu-vnni, cpu-avx512, cpu-avx2, cpu-arm64 or cpu-portable (another "
            "class's). 'alexnet-deploy doctor' shows this CPU's class.",
        ),
    ] = None,
    calib_size: Annotated[
        int | None,
        typer.Option("--calib-size", help="Calibration samples (default: half, at most 256)."),
    ] = None,
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
) -> None:
    """Calibrate once on real images and write INT8 Q/DQ models for TensorRT and for CPUs."""
    from alexnet_deploy.calib.config import METHODS
    from alexnet_deploy.calib.int8 import TARGETS
    from alexnet_deploy.calib.pipeline import calibrate as run_calibration
    from alexnet_deploy.calib.stage import DataRequest

    request = DataRequest(
        data=data,
        calib_size=calib_size,
        eval_size=eval_size,
        seed=seed,
        labels=labels,
        eval_data=eval_data,
        preprocessing=_preprocessing(input_size, resize_size, mean, std),
        batch_size=batch_size,
    )
    if quantizer is QuantizerChoice.nncf:
        _calibrate_nncf(model, request, target, method, output, max_top1_drop, force)
        return
    methods = METHODS if method is MethodChoice.auto else (method.value,)
    targets = tuple(target) if target else TARGETS
    with err_console.status("calibrating") as status:
        report = run_calibration(
            model,
            request,
            methods=methods,
            targets=targets,
            output=output,
            max_top1_drop=max_top1_drop,
            trt_cache=trt_cache,
            force=force,
            progress=lambda msg: status.update(msg),
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
    with err_console.status("quantizing with NNCF") as status:
        report = quantize_nncf(
            model,
            request,
            output=Path(output) if output else None,
            max_top1_drop=max_top1_drop,
            force=force,
            progress=lambda msg: status.update(msg),
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


def _print_calibration(report) -> None:
    import polars as pl

    from alexnet_deploy.render import rich_table

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
    out_console.print(rich_table(frame, title=f"INT8 fidelity against FP32 ({report.model.name})"))
    for c in report.candidates:
        if c.selected:
            figures = ", ".join(f"{basis} {f.top1_agreement:.4f}" for basis, f in c.figures.items())
            out_console.print(
                f"{c.target}: top-1 agreement {figures} (budget judged on {c.basis})",
                highlight=False,
                soft_wrap=True,
            )
    out_console.print(_data_label(report.data), highlight=False)
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


@app.command()
def fp16(
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
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="FP16 model (default: MODEL_DIR/STEM.fp16.onnx)."),
    ] = None,
    force: ForceOpt = False,
) -> None:
    """Convert to FP16 (float32 inputs/outputs kept) and measure its fidelity against FP32."""
    import polars as pl

    from alexnet_deploy.calib.fp16 import convert_fp16
    from alexnet_deploy.calib.stage import DataRequest
    from alexnet_deploy.render import rich_table

    request = DataRequest(
        data=data,
        eval_size=eval_size,
        seed=seed,
        labels=labels,
        batch_size=batch_size,
        preprocessing=_preprocessing(input_size, resize_size, mean, std),
    )
    with err_console.status("converting") as status:
        report = convert_fp16(
            model,
            request,
            output=output,
            max_top1_drop=max_top1_drop,
            force=force,
            progress=lambda msg: status.update(msg),
        )
    row = {
        "precision": "fp16",
        "judged_on": "ort",
        **report.fidelity.as_dict(),
        "emulated_top1_agreement": report.emulated.top1_agreement,
        "convert_seconds": report.convert_seconds,
    }
    out_console.print(
        rich_table(pl.DataFrame([row]), title=f"FP16 fidelity against FP32 ({model.name})")
    )
    out_console.print(_data_label(report.data), highlight=False)
    if report.budget_note:
        err_console.print(f"Note: {report.budget_note}", highlight=False)
    if report.failures:
        raise AlexnetDeployError(
            "; ".join(report.failures), hint="keep more ops in FP32 or raise --max-top1-drop"
        )
    out_console.print(
        f"wrote {report.output} (ops kept in FP32: {', '.join(report.kept_fp32_ops)})",
        highlight=False,
    )


class BackendChoice(str, Enum):
    ort = "ort"
    ort_cuda = "ort-cuda"
    ort_trt = "ort-trt"
    openvino = "openvino"
    torch = "torch"
    tensorrt = "tensorrt"


class BenchBackendChoice(str, Enum):
    ort = "ort"
    ort_cuda = "ort-cuda"
    ort_trt = "ort-trt"
    openvino = "openvino"
    torch = "torch"
    tensorrt = "tensorrt"
    ort_direct = "ort-direct"
    openvino_direct = "openvino-direct"


class PrecisionChoice(str, Enum):
    fp32 = "fp32"
    fp16 = "fp16"
    int8 = "int8"


class HintChoice(str, Enum):
    latency = "latency"
    throughput = "throughput"


WorkDirOpt = Annotated[
    Path, typer.Option("--work-dir", help="Where engines, caches and reports are kept.")
]


@app.command()
def build(
    model: Annotated[
        Path,
        typer.Argument(
            help="FP32 ONNX model (its FP16/INT8 artifacts are found beside it) or an artifact."
        ),
    ],
    backend: Annotated[
        BackendChoice, typer.Option("--backend", help="Runtime to build for.")
    ] = BackendChoice.ort,
    precision: Annotated[
        PrecisionChoice, typer.Option("--precision", help="Precision to run.")
    ] = PrecisionChoice.fp32,
    max_batch: Annotated[
        int, typer.Option("--max-batch", help="Largest batch the engine accepts.")
    ] = C.DEFAULT_MAX_BATCH,
    threads: Annotated[
        int | None, typer.Option("--threads", help="Intra-op threads (default: the runtime's).")
    ] = None,
    hint: Annotated[
        HintChoice, typer.Option("--hint", help="OpenVINO performance hint.")
    ] = HintChoice.latency,
    streams: Annotated[
        int | None, typer.Option("--streams", help="OpenVINO streams (default: from the hint).")
    ] = None,
    channels_last: Annotated[
        bool, typer.Option("--channels-last", help="torch backend: channels_last memory format.")
    ] = False,
    batch: Annotated[
        str | None,
        typer.Option(
            "--batch", help="TensorRT optimization profile MIN:OPT:MAX (default: 1:max/8:max)."
        ),
    ] = None,
    workspace_mb: Annotated[
        int, typer.Option("--workspace-mb", help="TensorRT workspace limit.")
    ] = C.TRT_WORKSPACE_MB,
    legacy_int8: Annotated[
        bool,
        typer.Option(
            "--legacy-int8", help="LEGACY, TensorRT 10 only: INT8 builder flag + calibration cache."
        ),
    ] = False,
    quantizer: QuantizerOpt = QuantizerChoice.qdq,
    spinning: Annotated[
        bool | None,
        typer.Option(
            "--spinning/--no-spinning",
            help="ONNX Runtime: intra-op threads spin while waiting (default: the runtime's).",
        ),
    ] = None,
    mem_arena: Annotated[
        bool | None,
        typer.Option(
            "--mem-arena/--no-mem-arena", help="ONNX Runtime: CPU memory arena (default: on)."
        ),
    ] = None,
    cpu_pinning: Annotated[
        bool | None,
        typer.Option(
            "--cpu-pinning/--no-cpu-pinning",
            help="OpenVINO: pin inference threads to cores (default: the runtime's).",
        ),
    ] = None,
    work_dir: WorkDirOpt = Path(C.DEFAULT_WORK_DIR),
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Build even if a matching engine exists.")
    ] = False,
    tuned: Annotated[
        Path | None,
        typer.Option("--tuned", help="Use the configuration saved by 'alexnet-deploy tune'."),
    ] = None,
) -> None:
    """Build an engine for a backend and precision (cached by content in the work directory)."""
    from alexnet_deploy.engines.build import build_engine
    from alexnet_deploy.engines.options import BuildOptions

    if tuned is not None:
        from alexnet_deploy.bench.tune import load_tuned

        choice = load_tuned(tuned)["choice"]
        backend, precision = BackendChoice(choice["backend"]), PrecisionChoice(choice["precision"])
        threads, streams, hint = choice["threads"], choice["streams"], HintChoice.throughput
        quantizer = QuantizerChoice(choice.get("quantizer", "qdq"))
        max_batch = max(max_batch, choice["batch"])
    options = BuildOptions(
        precision=precision.value,
        max_batch=max_batch,
        threads=threads,
        hint=hint.value,
        streams=streams,
        channels_last=channels_last,
        batch_profile=batch,
        workspace_mb=workspace_mb,
        legacy_int8=legacy_int8,
        quantizer=quantizer.value,
        spinning=spinning,
        mem_arena=mem_arena,
        cpu_pinning=cpu_pinning,
    )
    with err_console.status(f"building {backend.value} {precision.value}"):
        engine, reused = build_engine(model, backend.value, options, work_dir, rebuild=rebuild)
    side = engine.sidecar
    verb = "reused" if reused else f"built in {side.build_seconds:.1f} s"
    out_console.print(
        f"{side.backend} {side.precision} engine {verb}: {engine.path}\n"
        f"  {side.runtime} {side.runtime_version}, artifact {side.artifact} (sha256 {side.artifact_sha256[:12]})\n"
        f"  sidecar {engine.sidecar_path}",
        highlight=False,
    )


class ModeChoice(str, Enum):
    latency = "latency"
    throughput = "throughput"
    server = "server"


EXIT_PARTIAL = 3


def _bench_config(
    config_file,
    backend,
    precision,
    batch,
    mode,
    threads,
    streams,
    rules: dict,
    server_bound_ms,
    quantizers=None,
):
    from dataclasses import replace

    from alexnet_deploy.bench.config import (
        BenchConfig,
        MeasureRules,
        config_from_toml,
        parse_int_list,
    )

    base = config_from_toml(config_file) if config_file else BenchConfig()
    matrix_over = {}
    if backend:
        matrix_over["backends"] = tuple(b.value for b in backend)
    if precision:
        matrix_over["precisions"] = tuple(p.value for p in precision)
    if batch is not None:
        matrix_over["batches"] = parse_int_list(batch, "batch")
    if mode:
        matrix_over["modes"] = tuple(m.value for m in mode)
    if threads is not None:
        matrix_over["threads"] = parse_int_list(threads, "threads")
    if streams is not None:
        matrix_over["streams"] = parse_int_list(streams, "streams")
    if server_bound_ms is not None:
        matrix_over["server_latency_bound_ms"] = server_bound_ms
    if quantizers:
        matrix_over["quantizers"] = tuple(q.value for q in quantizers)
    rules_over = {k: v for k, v in rules.items() if v is not None}
    if "percentiles" in rules_over:
        try:
            rules_over["percentiles"] = tuple(
                float(p) for p in rules_over["percentiles"].split(",")
            )
        except ValueError:
            from alexnet_deploy.errors import UsageError

            raise UsageError(
                f"--percentiles takes comma-separated numbers, got {rules_over['percentiles']!r}"
            ) from None
    matrix = replace(base.matrix, **matrix_over)
    return BenchConfig(matrix, MeasureRules(**{**base.rules.__dict__, **rules_over}))


@app.command()
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
        Path | None, typer.Option("--config", help="TOML file with [matrix] and [rules].")
    ] = None,
    backend: Annotated[
        list[BenchBackendChoice] | None,
        typer.Option(
            "--backend", help="Backends (default: all available, plus the direct runtimes)."
        ),
    ] = None,
    precision: Annotated[
        list[PrecisionChoice] | None, typer.Option("--precision", help="Precisions (default: all).")
    ] = None,
    batch: Annotated[
        str | None, typer.Option("--batch", help="Batch sizes, comma-separated (default: 1,32).")
    ] = None,
    mode: Annotated[
        list[ModeChoice] | None,
        typer.Option("--mode", help="latency, throughput, server (default: latency)."),
    ] = None,
    quantizer: Annotated[
        list[QuantizerChoice] | None,
        typer.Option(
            "--quantizer", help="INT8 routes: qdq (this tool's), nncf (NNCF's) (default: qdq)."
        ),
    ] = None,
    threads: Annotated[
        str | None, typer.Option("--threads", help="Intra-op thread counts to sweep.")
    ] = None,
    streams: Annotated[
        str | None,
        typer.Option("--streams", help="Concurrent requests / OpenVINO streams to sweep."),
    ] = None,
    warmup_iterations: Annotated[int | None, typer.Option("--warmup-iterations")] = None,
    warmup_seconds: Annotated[float | None, typer.Option("--warmup-seconds")] = None,
    min_iterations: Annotated[int | None, typer.Option("--min-iterations")] = None,
    min_seconds: Annotated[float | None, typer.Option("--min-seconds")] = None,
    max_seconds: Annotated[
        float | None, typer.Option("--max-seconds", help="Time cap per configuration.")
    ] = None,
    stability: Annotated[
        float | None,
        typer.Option("--stability", help="Stop when the median's 95% CI is within +-this."),
    ] = None,
    percentiles: Annotated[
        str | None, typer.Option("--percentiles", help="Comma-separated, e.g. 50,90,99.")
    ] = None,
    repeat: Annotated[
        int | None,
        typer.Option("--repeat", help="Run each configuration N times; report the spread."),
    ] = None,
    server_bound_ms: Annotated[
        float | None, typer.Option("--server-bound-ms", help="Server mode p99 bound.")
    ] = None,
    direct: Annotated[
        bool,
        typer.Option(
            "--direct/--no-direct", help="Also bench ONNX Runtime and OpenVINO used directly."
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
            help="Bench the configuration saved by 'tune' beside the runtimes used directly (--batch adds batch sizes for both).",
        ),
    ] = None,
    triton: Annotated[
        str | None,
        typer.Option(
            "--triton", help="Bench a model served by Triton: http://HOST:PORT or grpc://HOST:PORT."
        ),
    ] = None,
    triton_model: Annotated[
        str | None, typer.Option("--triton-model", help="The served model's name (with --triton).")
    ] = None,
) -> None:
    """Benchmark every backend x precision (the main job with no arguments) and write reports."""
    from rich.progress import (
        BarColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from alexnet_deploy.bench.pipeline import ModelRequest, noisy_rows, run_bench
    from alexnet_deploy.bench.report import terminal_frame
    from alexnet_deploy.render import rich_table

    if tuned is not None:
        from alexnet_deploy.bench.tune import load_tuned, tuned_quantizers

        choice = load_tuned(tuned)["choice"]
        backend = [
            BenchBackendChoice(choice["backend"]),
            BenchBackendChoice.ort_direct,
            BenchBackendChoice.openvino_direct,
        ]
        precision = [PrecisionChoice(choice["precision"])]
        # the tuned batch, and any others asked for (peers at their own best batch too)
        extra_batches = [] if batch is None else [b.strip() for b in batch.split(",") if b.strip()]
        batch = ",".join(dict.fromkeys([str(choice["batch"]), *extra_batches]))
        mode = [ModeChoice(choice["mode"])]
        streams = None if choice["streams"] is None else str(choice["streams"])
        threads = None if choice["threads"] is None else str(choice["threads"])
        quantizer = [QuantizerChoice(q) for q in tuned_quantizers(choice)]
    config = _bench_config(
        config_file,
        backend,
        precision,
        batch,
        mode,
        threads,
        streams,
        {
            "warmup_iterations": warmup_iterations,
            "warmup_seconds": warmup_seconds,
            "min_iterations": min_iterations,
            "min_seconds": min_seconds,
            "max_seconds": max_seconds,
            "stability": stability,
            "percentiles": percentiles,
            "repeat": repeat,
        },
        server_bound_ms,
        quantizer,
    )
    request = ModelRequest(
        model=model, variant=variant.value, weights=weights, seed=seed, data=data
    )
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
    extras = []
    if self_check:
        from alexnet_deploy.bench.selfcheck import self_check_comparisons

        extras.append(self_check_comparisons)
    if tuned is not None:
        from alexnet_deploy.bench.tune import tuned_comparison

        extras.append(lambda _model, rows: tuned_comparison(choice, rows))

    def extra(model_path, rows) -> dict:
        found = {}
        for compare in extras:
            found.update(compare(model_path, rows))
        return found

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        status_task = bar.add_task("preparing", total=None)

        def stage(msg: str) -> None:
            bar.update(status_task, description=msg)

        report, result, paths = run_bench(
            request,
            config,
            work_dir,
            out or Path(work_dir) / "reports",
            direct=direct,
            roofline=roofline,
            progress_bar=bar,
            progress=stage,
            extra_comparisons=extra,
            served=served,
        )
        bar.remove_task(status_task)
    out_console.print(
        rich_table(terminal_frame(result.rows), title=f"alexnet-deploy bench ({report['status']})")
    )
    for item in report["comparisons"].values():
        out_console.print(f"  {item['text']}", highlight=False)
    if report["model"]["weights"] == "untrained":
        err_console.print(
            "Note: untrained weights: fidelity columns compare an untrained network (uninformative)."
        )
    for row in noisy_rows(result.rows):
        err_console.print(
            f"Warning: noisy machine: {row['backend']} {row['precision']} b{row['batch']} "
            f"p50 varied {100 * row['repeat_p50_spread']:.1f}% across repeats"
        )
    for row in result.failed:
        err_console.print(
            f"Failed: {row['backend']} {row['precision']} b{row['batch']} {row['mode']}: {row['reason']}",
            highlight=False,
        )
    out_console.print("reports: " + ", ".join(str(p) for p in paths.values()), highlight=False)
    if result.interrupted:
        err_console.print("Interrupted: the finished rows were written.")
        raise typer.Exit(130)
    if result.failed:
        raise typer.Exit(EXIT_PARTIAL)


@app.command()
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
) -> None:
    """Search runtime x batch x concurrency x threads for the fastest engine meeting a constraint; save the choice."""
    from alexnet_deploy.bench.config import BenchConfig, Matrix, MeasureRules, parse_int_list
    from alexnet_deploy.bench.pipeline import ModelRequest, run_bench
    from alexnet_deploy.bench.tune import (
        Constraint,
        choose,
        default_quantizers,
        front_rows,
        save_tuned,
        tuned_record,
    )
    from alexnet_deploy.render import rich_table

    constraint = Constraint(max_p99_ms=max_p99_ms, min_top1_agreement=1 - max_top1_drop / 100)
    matrix = Matrix(
        backends=tuple(b.value for b in backend) if backend else ("ort", "openvino"),
        precisions=tuple(p.value for p in precision) if precision else ("int8",),
        batches=parse_int_list(batch, "batch"),
        modes=("throughput",),
        streams=parse_int_list(streams, "streams"),
        threads=parse_int_list(threads, "threads") if threads else (None,),
        quantizers=tuple(q.value for q in quantizer) if quantizer else default_quantizers(),
    )
    rules = MeasureRules(
        min_seconds=min_seconds, max_seconds=max(max_seconds, min_seconds), repeat=repeat
    )
    out = Path(work_dir) / "reports" / "tune"
    with err_console.status("tuning") as status:
        report, result, paths = run_bench(
            ModelRequest(model=model, data=data),
            BenchConfig(matrix, rules),
            work_dir,
            out,
            direct=False,
            roofline=False,
            progress=status.update,
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
    out_console.print(rich_table(front, title="Pareto front: throughput against p99"))
    path = save_tuned(
        tuned_record(tuned, constraint, Path(report["model"]["path"]), paths["json"]),
        output or Path(work_dir) / "tuned.json",
    )
    c = tuned.chosen
    out_console.print(
        f"chosen: {c['backend']} {c['precision']} ({c.get('quantizer', 'qdq')}) batch {c['batch']} streams {c.get('streams')} threads "
        f"{c.get('threads')}: {c['images_per_s']:.1f} images/s, p99 {c['p99_ms']:.1f} ms; saved {path}",
        highlight=False,
        soft_wrap=True,
    )
    out_console.print(f"full table: {paths['md']}", highlight=False)


@app.command()
def package(
    triton: Annotated[
        Path, typer.Option("--triton", help="Output directory: a Triton model repository.")
    ],
    model: Annotated[
        Path | None,
        typer.Option(
            "--model", help="FP32 export whose artifacts to package (default: the main job's)."
        ),
    ] = None,
    max_batch: Annotated[
        int,
        typer.Option(
            "--max-batch",
            help="max_batch_size for ONNX models (TensorRT: from the engine profile).",
        ),
    ] = C.DEFAULT_MAX_BATCH,
    instances: Annotated[
        int, typer.Option("--instances", help="Instances per model (instance_group count).")
    ] = 1,
    threads: Annotated[
        int | None, typer.Option("--threads", help="ONNX Runtime intra-op threads per instance.")
    ] = None,
    openvino: Annotated[
        bool, typer.Option("--openvino/--no-openvino", help="Also package OpenVINO IR models.")
    ] = True,
    work_dir: WorkDirOpt = Path(C.DEFAULT_WORK_DIR),
    force: ForceOpt = False,
) -> None:
    """Write a Triton Inference Server model repository from the built artifacts."""
    from alexnet_deploy.errors import UsageError
    from alexnet_deploy.serve.package import package_triton
    from alexnet_deploy.serve.triton_config import ServingOptions

    if max_batch < 1 or instances < 1:
        raise UsageError("--max-batch and --instances must be at least 1")
    if model is None:
        from alexnet_deploy.bench.pipeline import ModelRequest, ensure_artifacts

        with err_console.status("preparing artifacts") as status:
            model, _ = ensure_artifacts(ModelRequest(), work_dir, status.update)
    options = ServingOptions(max_batch_size=max_batch, instances=instances, threads=threads)
    with err_console.status("packaging"):
        repo = package_triton(
            model, triton, work_dir=work_dir, options=options, force=force, openvino=openvino
        )
    for m in repo.models:
        out_console.print(f"{m.name}: {m.kind} {m.precision} ({m.config_path})", highlight=False)
    for what, why in repo.skipped.items():
        err_console.print(f"skipped {what}: {why}", highlight=False)
    out_console.print(
        f"repository: {repo.path} (start: tritonserver --model-repository {repo.path})",
        highlight=False,
    )


@app.command()
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
        typer.Option("--strict", help="Fail (exit 2) when any configuration is not comparable."),
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
        typer.Option("--model", help="A/A: FP32 model (default: the main job's export)."),
    ] = None,
    backend: Annotated[
        BackendChoice, typer.Option("--backend", help="A/A: backend.")
    ] = BackendChoice.ort,
    precision: Annotated[
        PrecisionChoice, typer.Option("--precision", help="A/A: precision.")
    ] = PrecisionChoice.fp32,
    batch: Annotated[int, typer.Option("--batch", help="A/A: batch size.")] = 1,
    trials: Annotated[int, typer.Option("--trials", help="A/A: number of paired trials.")] = 10,
    work_dir: WorkDirOpt = Path(C.DEFAULT_WORK_DIR),
) -> None:
    """Compare a bench report with a baseline: exit 0 pass, 1 regression, 2 usage error or nothing comparable."""
    from alexnet_deploy.errors import UsageError
    from alexnet_deploy.gate.compare import Thresholds

    thresholds = Thresholds.parse(threshold or [], top1_budget)
    if aa:
        _gate_aa(model, backend.value, precision.value, batch, trials, thresholds, work_dir)
        return
    if baseline is None:
        raise UsageError(
            "gate needs a BASELINE report",
            hint="alexnet-deploy gate BASELINE CURRENT, or --run, or --aa",
        )
    from alexnet_deploy.gate.baseline import accept_baseline, bench_baseline_now
    from alexnet_deploy.gate.compare import compare_reports
    from alexnet_deploy.gate.output import result_frame, write_outputs
    from alexnet_deploy.gate.ratios import compare_ratios
    from alexnet_deploy.gate.reports import load_report
    from alexnet_deploy.render import rich_table

    if update_baseline and not baseline.exists() and current is not None:
        accept_baseline(baseline, load_report(current), ratios)  # a first baseline
        out_console.print(f"baseline {baseline} created from {current}", highlight=False)
        return
    base = load_report(baseline)
    if run_now:
        with err_console.status("benching the baseline's configurations"):
            current = bench_baseline_now(base, work_dir)
    if current is None:
        raise UsageError(
            "gate needs a CURRENT report",
            hint="pass it, or --run to bench the baseline's configurations now",
        )
    cur = load_report(current)
    if ratios or base.ratios:
        result = compare_ratios(base, cur, thresholds.values["p50"])
    else:
        result = compare_reports(base, cur, thresholds, allow_env_mismatch=allow_env_mismatch)
    frame = result_frame(result)
    if frame.height:
        out_console.print(rich_table(frame.drop("note"), title="alexnet-deploy gate"))
    for verdict in result.verdicts:
        if verdict.note and verdict.verdict in ("regressed", "not comparable"):
            out_console.print(
                f"  {verdict.config} {verdict.metric}: {verdict.note}",
                highlight=False,
                soft_wrap=True,
            )
    for note in result.notes:
        err_console.print(f"[bold yellow]{escape(note)}[/]", soft_wrap=True)
    skipped = len(result.verdicts) - len(result.comparable)
    if skipped and result.comparable:
        err_console.print(
            f"Warning: {skipped} check(s) not comparable (listed above); --strict fails on them.",
            soft_wrap=True,
        )
    out_console.print(result.summary(), highlight=False, soft_wrap=True)
    write_outputs(result, json_out, md_out, junit_out)
    if update_baseline:
        accept_baseline(baseline, cur, ratios or bool(base.ratios))
        out_console.print(f"baseline {baseline} updated from {current}", highlight=False)
        return
    code = result.exit_code
    if strict and code == 0 and len(result.comparable) != len(result.verdicts):
        code = 2
    if code:
        raise typer.Exit(code)


def _gate_aa(
    model, backend: str, precision: str, batch: int, trials: int, thresholds, work_dir: Path
) -> None:
    import numpy as np

    from alexnet_deploy.gate.noise import aa_on_engine, derive_threshold

    threshold = thresholds.values["p50"]
    with err_console.status("A/A trials") as status:
        outcomes = aa_on_engine(
            model,
            backend,
            precision,
            batch,
            trials,
            threshold,
            work_dir,
            on_trial=lambda i, o: status.update(
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


@app.command()
def doctor(fmt: FormatOpt = TableFormat.table) -> None:
    """What this machine can run: runtimes, providers, CPU features, GPU, and why not."""
    import polars as pl

    from alexnet_deploy.doctor import run_checks

    frame = pl.DataFrame([vars(c) for c in run_checks()])
    _print_frame(frame, fmt, title="alexnet-deploy doctor")


def _debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get(C.DEBUG_ENV_VAR, "") not in ("", "0")


def run(argv: list[str] | None = None) -> int:
    """Run the CLI on ``argv`` and return its exit code; user errors become one-line messages."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        app(args=argv, prog_name="alexnet-deploy", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except AlexnetDeployError as err:
        if _debug_requested(argv):
            traceback.print_exc()
        err_console.print(
            f"[bold red]Error:[/] {escape(err.message)}", highlight=False, soft_wrap=True
        )
        if err.hint:
            err_console.print(f"[dim]Hint:[/] {escape(err.hint)}", highlight=False, soft_wrap=True)
        return err.exit_code
    except KeyboardInterrupt:
        err_console.print("Interrupted.")
        return 130
    return 0


def main() -> None:
    sys.exit(run())
