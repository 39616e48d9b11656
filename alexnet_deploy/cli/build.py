"""build: one engine."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from alexnet_deploy import constants as C
from alexnet_deploy.cli.console import err_console, out_console, status
from alexnet_deploy.cli.options import (
    BackendChoice,
    FloatPrecisionOpt,
    HardwareCompatChoice,
    HintChoice,
    PositiveInt,
    PrecisionChoice,
    QuantizerChoice,
    QuantizerOpt,
    WorkDirOpt,
)


def _batch_profile(value: str | None) -> str | None:
    """--batch MIN:OPT:MAX checked at parse time: whole numbers, 1 <= MIN <= OPT <= MAX."""
    if value is not None:
        from alexnet_deploy.engines.tensorrt_api import Profile

        Profile.parse(value)
    return value


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
        PrecisionChoice | None,
        typer.Option(
            "--precision",
            help="Precision to run (default: the file's own: fp32 for an export, int8 for an "
            "INT8 or plan file).",
        ),
    ] = None,
    max_batch: Annotated[
        int,
        typer.Option("--max-batch", help="Largest batch the engine accepts.", callback=PositiveInt),
    ] = C.DEFAULT_MAX_BATCH,
    static_batch: Annotated[
        int | None,
        typer.Option(
            "--static-batch",
            help="Compile for exactly this batch (OpenVINO's shape, ONNX Runtime's batch "
            "dimension, TensorRT's profile N:N:N); any other batch is refused (default: a "
            "dynamic 1..--max-batch range).",
            callback=PositiveInt,
        ),
    ] = None,
    float_precision: FloatPrecisionOpt = None,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads", help="Intra-op threads (default: the runtime's).", callback=PositiveInt
        ),
    ] = None,
    hint: Annotated[
        HintChoice, typer.Option("--hint", help="OpenVINO performance hint.")
    ] = HintChoice.latency,
    streams: Annotated[
        int | None,
        typer.Option(
            "--streams", help="OpenVINO streams (default: from the hint).", callback=PositiveInt
        ),
    ] = None,
    channels_last: Annotated[
        bool, typer.Option("--channels-last", help="torch backend: channels_last memory format.")
    ] = False,
    batch: Annotated[
        str | None,
        typer.Option(
            "--batch",
            help="TensorRT optimization profile MIN:OPT:MAX (default: 1:max/8:max).",
            callback=_batch_profile,
        ),
    ] = None,
    workspace_mb: Annotated[
        int,
        typer.Option("--workspace-mb", help="TensorRT workspace limit.", callback=PositiveInt),
    ] = C.TRT_WORKSPACE_MB,
    legacy_int8: Annotated[
        bool,
        typer.Option(
            "--legacy-int8", help="LEGACY, TensorRT 10 only: INT8 builder flag + calibration cache."
        ),
    ] = False,
    hardware_compat: Annotated[
        HardwareCompatChoice,
        typer.Option(
            "--hardware-compat",
            help="TensorRT: the GPUs the plan runs on: none (this GPU model), ampere+ (any GPU "
            "of compute capability 8.0+), same-cc (any GPU of this compute capability).",
        ),
    ] = HardwareCompatChoice.none,
    version_compatible: Annotated[
        bool,
        typer.Option(
            "--version-compatible",
            help="TensorRT: the plan also runs on later TensorRT releases of the same major.",
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
    from alexnet_deploy import api
    from alexnet_deploy.engines.options import BuildOptions

    if precision is None:
        from alexnet_deploy.onnx_model import read_artifact

        chosen_precision = read_artifact(model).precision
    else:
        chosen_precision = precision.value
    settings = {
        "backend": backend.value,
        "precision": chosen_precision,
        "threads": threads,
        "streams": streams,
        "hint": hint.value,
        "quantizer": quantizer.value,
        "max_batch": max_batch,
        "static_batch": static_batch,
        "float_precision": float_precision.value if float_precision else None,
    }
    if tuned is not None:
        from alexnet_deploy.errors import UsageError

        if static_batch is not None or float_precision is not None:
            raise UsageError(
                "--tuned decides --static-batch and --float-precision",
                hint="drop them, or build without --tuned",
            )
        from alexnet_deploy.bench.tune import tuned_build_settings, tuned_choice

        settings = tuned_build_settings(tuned_choice(tuned), max_batch)
    name = settings.pop("backend")
    options = BuildOptions(
        **settings,
        channels_last=channels_last,
        batch_profile=batch,
        workspace_mb=workspace_mb,
        legacy_int8=legacy_int8,
        spinning=spinning,
        mem_arena=mem_arena,
        cpu_pinning=cpu_pinning,
        hardware_compat=hardware_compat.value,
        version_compatible=version_compatible,
    )
    with status(f"building {name} {options.precision}"):
        engine, reused = api.build(model, name, options, work_dir=work_dir, rebuild=rebuild)
    side = engine.sidecar
    verb = "reused" if reused else f"built in {side.build_seconds:.1f} s"
    out_console.print(
        f"{side.backend} {side.precision} engine {verb}: {engine.path}\n"
        f"  {side.runtime} {side.runtime_version}, artifact {side.artifact} (sha256 {side.artifact_sha256[:12]})\n"
        f"  sidecar {engine.sidecar_path}"
        + (f"\n  static batch: input {side.input_shape}" if options.static_batch else "")
        + (f"\n  float parts in {side.float_precision}" if side.float_precision else ""),
        highlight=False,
    )
    fallback = side.details.get("fallback_nodes") or {}
    for provider, nodes in fallback.items():
        err_console.print(
            f"Warning: {len(nodes)} node(s) ran on {provider}, not {name}'s provider: "
            + ", ".join(nodes[:5])
            + (" ..." if len(nodes) > 5 else "")
            + f" (all listed in {engine.sidecar_path})",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
