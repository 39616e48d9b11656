"""Shared command-line options and choices, declared once (Annotated aliases), the rules
every numeric option is checked by at parse time (``callback=``): a bad value exits 2 with one
``Error:`` line naming the option, before any work; and the one parser of every multi-value
option (:func:`many`: repeated or comma-separated, the same in every command)."""

from __future__ import annotations

import math
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from alexnet_deploy import constants as C
from alexnet_deploy.calib.config import METHODS
from alexnet_deploy.engines.options import (
    FLOAT_PRECISIONS,
    HARDWARE_COMPAT,
    HINTS,
    PRECISIONS,
    QUANTIZERS,
)
from alexnet_deploy.engines.registry import BACKEND_NAMES
from alexnet_deploy.models.variants import VARIANTS
from alexnet_deploy.precision.compare import RUNTIMES as COMPARE_RUNTIMES
from alexnet_deploy.render import TableFormat


def _rule(expected: str, holds: Callable[[float], bool]):
    """A parse-time check for a numeric option (or each value of a repeated one): a value
    for which ``holds`` is false is a usage error naming the option and what it takes."""
    from alexnet_deploy.errors import UsageError

    def check(param: typer.CallbackParam, value):
        for v in value if isinstance(value, (list, tuple)) else (value,):
            if v is not None and not holds(v):
                raise UsageError(f"{param.opts[0]} must be {expected}, got {v}")
        return value

    return check


def at_least(low: int):
    return _rule(f"at least {low}", lambda v: v >= low)


def between(low: float, high: float):
    return _rule(f">= {low} and <= {high}", lambda v: math.isfinite(v) and low <= v <= high)


PositiveInt = at_least(1)
NonNegativeInt = _rule(">= 0", lambda v: v >= 0)
Seed = between(0, C.MAX_SEED)  # what numpy's and torch's generators take
FiniteFloat = _rule("a finite number", math.isfinite)
PositiveFloat = _rule("a finite number above 0", lambda v: math.isfinite(v) and v > 0)
NonNegativeFloat = _rule("a finite number >= 0", lambda v: math.isfinite(v) and v >= 0)
Percent = between(0, 100)  # top-1 points
Percentile = _rule("above 0 and below 100", lambda v: math.isfinite(v) and 0 < v < 100)

_KINDS = {int: ("int", "whole numbers"), float: ("float", "numbers"), str: ("str", "text")}


def split_values(kind: type = str, *, choices: tuple[str, ...] = (), rule=None):
    """The one parser of every multi-value option (``callback=``): each value given is split
    on commas, so ``--batch 1 --batch 32`` and ``--batch 1,32`` are the same list; each item
    is converted by ``kind`` (int, float or str), one of ``choices`` where given, and checked
    by ``rule`` (one of the parse-time rules above; a numeric kind must have one). A value
    given twice is refused, never kept twice or dropped. Not given: None (the default)."""
    from alexnet_deploy.errors import UsageError

    if kind is not str and rule is None:
        raise TypeError(f"a multi-value option of {kind.__name__} needs a parse-time rule")

    def parse(param: typer.CallbackParam, value: list[str] | None):
        if not value:
            return None
        flag, items, twice = param.opts[0], {}, []  # items: each value -> its text
        for text in value:
            for part in (p.strip() for p in text.split(",")):
                if not part:
                    raise UsageError(f"{flag} {text!r} has an empty value", hint=_both(flag))
                try:
                    item = kind(part)
                except ValueError:
                    raise UsageError(
                        f"{flag} takes {_KINDS[kind][1]}, got {part!r}",
                        hint=_both(flag),
                    ) from None
                if choices and item not in choices:
                    raise UsageError(
                        f"{flag} {part!r} is not a choice",
                        hint=f"choose from: {', '.join(choices)}",
                    )
                if item in items:
                    twice.append(part)
                items.setdefault(item, part)
        if twice:
            raise UsageError(f"{flag} {', '.join(twice)} given twice", hint="give each value once")
        return rule(param, list(items)) if rule else list(items)

    parse.splits_values = True  # tests/test_repeated_options.py finds every user of this parser
    return parse


def _both(flag: str) -> str:
    return f"values repeat the option or are separated by commas: {flag} A {flag} B, or {flag} A,B"


def many(flag: str, help: str, *, kind: type = str, choices: tuple[str, ...] = (), rule=None):
    """A multi-value option, parsed by :func:`split_values`; its help shows both forms. The
    parameter is annotated ``list[str] | None`` (what the command line gives); the command
    receives the parsed items (``kind``)."""
    return typer.Option(
        flag,
        help=f"{help} Repeat it or separate by commas ({flag} A {flag} B = {flag} A,B).",
        metavar=f"<{'|'.join(choices) or _KINDS[kind][0]}>",
        callback=split_values(kind, choices=choices, rule=rule),
    )


def check_order(low: float, high: float, low_flag: str, high_flag: str) -> None:
    """A minimum above its maximum (given or default) is a usage error, before any work."""
    from alexnet_deploy.errors import UsageError

    if low > high:
        raise UsageError(
            f"{low_flag} {low:g} is above {high_flag} {high:g}",
            hint=f"raise {high_flag} or lower {low_flag}",
        )


def parse_triple(text: str, flag: str, *, positive: bool = False) -> tuple[float, float, float]:
    """'R,G,B' -> three finite floats (above 0 where ``positive``: a std divides)."""
    from alexnet_deploy.errors import UsageError

    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise UsageError(f"{flag} takes three finite comma-separated numbers 'R,G,B', got {text!r}")
    if positive and min(values) <= 0:
        raise UsageError(f"{flag} values divide the pixels: each must be above 0, got {text!r}")
    return values  # type: ignore[return-value]


def _triple(positive: bool):
    def check(param: typer.CallbackParam, value: str | None):
        return None if value is None else parse_triple(value, param.opts[0], positive=positive)

    return check


def _choices(name: str, values) -> type[Enum]:
    """A command-line choice made from the library's own tuple of names (never a copy):
    members are the names with '-' as '_' (BackendChoice.ort_cuda is 'ort-cuda')."""
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
    int,
    typer.Option("--seed", help="Seed for untrained weights and validation inputs.", callback=Seed),
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
        help="Images folder (JPEG/PNG/GIF/WebP/BMP/TIFF, recursive; class sub-folders give labels), a preprocessed "
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
    typer.Option(
        "--calib-size",
        help="Calibration samples (default: half, at most 256).",
        callback=PositiveInt,
    ),
]
EvalSizeOpt = Annotated[
    int | None,
    typer.Option(
        "--eval-size",
        help="Held-out samples for fidelity (default: the rest, at most 512).",
        callback=PositiveInt,
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
        "--max-top1-drop",
        help="Fail when top-1 drops more points than this against FP32.",
        callback=Percent,
    ),
]
BatchSizeOpt = Annotated[
    int,
    typer.Option(
        "--batch-size", help="Batch size for calibration and fidelity runs.", callback=PositiveInt
    ),
]
InputSizeOpt = Annotated[
    int | None,
    typer.Option(
        "--input-size",
        help="Crop size, for a model without a card (or give it one: 'import').",
        callback=PositiveInt,
    ),
]
ResizeSizeOpt = Annotated[
    int | None,
    typer.Option(
        "--resize-size",
        help="Short-side resize, for a model without a card (or give it one: 'import').",
        callback=PositiveInt,
    ),
]
MeanOpt = Annotated[
    str | None,
    typer.Option(
        "--mean",
        help="Per-channel mean 'R,G,B', for a model without a card (or give it one: 'import').",
        callback=_triple(positive=False),
    ),
]
StdOpt = Annotated[
    str | None,
    typer.Option(
        "--std",
        help="Per-channel std 'R,G,B' (each above 0), for a model without a card (or give it one: 'import').",
        callback=_triple(positive=True),
    ),
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Replace existing outputs.")]
ModelArg = Annotated[
    Path,
    typer.Argument(
        help="FP32 ONNX model (from 'alexnet-deploy export' or 'alexnet-deploy import')."
    ),
]


def parse_preprocessing(input_size, resize_size, mean, std):
    """Explicit preprocessing for a foreign model: all four flags or none (``mean`` and ``std``
    as their callbacks parsed them: three floats each)."""
    from alexnet_deploy.errors import UsageError
    from alexnet_deploy.models.variants import Preprocessing

    given = [v is not None for v in (input_size, resize_size, mean, std)]
    if not any(given):
        return None
    if not all(given):
        raise UsageError(
            "--input-size, --resize-size, --mean and --std go together", hint="pass all four"
        )
    return Preprocessing(resize_size, input_size, tuple(mean), tuple(std))


BackendChoice = _choices("BackendChoice", BACKEND_NAMES)


PrecisionChoice = _choices("PrecisionChoice", PRECISIONS)


HintChoice = _choices("HintChoice", HINTS)
FloatPrecisionChoice = _choices("FloatPrecisionChoice", FLOAT_PRECISIONS)
FloatPrecisionOpt = Annotated[
    FloatPrecisionChoice | None,
    typer.Option(
        "--float-precision",
        help="INT8 only: run the engine's float parts (the layers between Q/DQ) in bf16: "
        "OpenVINO, on a CPU with native BF16 (default: the file's FP32).",
    ),
]
HardwareCompatChoice = _choices("HardwareCompatChoice", HARDWARE_COMPAT)


def refuse_pixel_model(model: Path | None, command: str) -> None:
    """An ``export --preprocess`` model (pixels in) where ``command`` needs the float export:
    refused before any work, with the command named."""
    if model is not None and model.is_file():
        from alexnet_deploy.onnx_model import read_artifact

        read_artifact(model).require_float_input(command)


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


# import and export write their model into the work directory unless -o says where
ModelWorkDirOpt = Annotated[
    Path,
    typer.Option(
        "--work-dir",
        help="Work directory: the default -o is WORK_DIR/NAME.onnx.",
        callback=_work_dir,
    ),
]


CompareRuntimeChoice = _choices("CompareRuntimeChoice", COMPARE_RUNTIMES)


EXIT_PARTIAL = 3
