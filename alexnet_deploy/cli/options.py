"""Shared command-line options and choices, declared once (Annotated aliases)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from alexnet_deploy.bench.config import MODES
from alexnet_deploy.calib.config import METHODS
from alexnet_deploy.engines.options import HARDWARE_COMPAT, HINTS, PRECISIONS, QUANTIZERS
from alexnet_deploy.engines.registry import BACKEND_NAMES, BENCH_BACKENDS
from alexnet_deploy.models.variants import VARIANTS
from alexnet_deploy.precision.compare import RUNTIMES as COMPARE_RUNTIMES
from alexnet_deploy.render import TableFormat


def _choices(name: str, values) -> type[Enum]:
    """A command-line choice made from the library's own tuple of names (never a copy):
    members are the names with '-' as '_' (BenchBackendChoice.ort_direct is 'ort-direct')."""
    return Enum(name, {v.replace("-", "_"): v for v in values}, type=str)


VariantChoice = _choices("VariantChoice", tuple(VARIANTS))


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


QuantizerChoice = _choices("QuantizerChoice", QUANTIZERS)


QuantizerOpt = Annotated[
    QuantizerChoice,
    typer.Option(
        "--quantizer",
        help="INT8 route: qdq (this tool's calibration, Q/DQ per target) or nncf (NNCF's quantize, CPU form).",
    ),
]


MethodChoice = _choices("MethodChoice", (*METHODS, "auto"))


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
CalibSizeOpt = Annotated[
    int | None,
    typer.Option("--calib-size", help="Calibration samples (default: half, at most 256)."),
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


def parse_preprocessing(input_size, resize_size, mean, std):
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


BackendChoice = _choices("BackendChoice", BACKEND_NAMES)


BenchBackendChoice = _choices("BenchBackendChoice", BENCH_BACKENDS)


PrecisionChoice = _choices("PrecisionChoice", PRECISIONS)


HintChoice = _choices("HintChoice", HINTS)
HardwareCompatChoice = _choices("HardwareCompatChoice", HARDWARE_COMPAT)


def _work_dir(path: Path | None) -> Path | None:
    if path is not None and path.exists() and not path.is_dir():
        raise typer.BadParameter(f"{path} is a file; the work directory holds engines and caches")
    return path


WorkDirOpt = Annotated[
    Path,
    typer.Option(
        "--work-dir", help="Where engines, caches and reports are kept.", callback=_work_dir
    ),
]


ModeChoice = _choices("ModeChoice", MODES)
CompareRuntimeChoice = _choices("CompareRuntimeChoice", COMPARE_RUNTIMES)


EXIT_PARTIAL = 3
