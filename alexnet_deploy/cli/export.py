"""summary and export."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from alexnet_deploy import constants as C
from alexnet_deploy.cli.card import (
    CardInputSizeOpt,
    CardLabelsOpt,
    CardMeanOpt,
    CardResizeSizeOpt,
    CardStdOpt,
    ChannelOrderOpt,
    CropOpt,
    InterpolationOpt,
    NameOpt,
    PresetChoice,
    PresetOpt,
    ScaleOpt,
    card_options,
)
from alexnet_deploy.cli.console import err_console, out_console, print_frame, print_table, status
from alexnet_deploy.cli.options import (
    FormatOpt,
    ModelWorkDirOpt,
    SeedOpt,
    VariantChoice,
    between,
)
from alexnet_deploy.modelcard import DEFAULT_PRESET
from alexnet_deploy.models.variants import DEFAULT_VARIANT
from alexnet_deploy.render import TableFormat

# summary and export take a built-in variant or a model of the user's (a file, or --from)
VariantOrModelOpt = Annotated[
    VariantChoice | None,
    typer.Option("--variant", help=f"Built-in variant (default {DEFAULT_VARIANT})."),
]


def summary(
    model: Annotated[
        Path | None,
        typer.Argument(
            help="Any ONNX model: its table from the graph itself (shape inference at batch 1). "
            "Without it, the built-in variant's."
        ),
    ] = None,
    variant: VariantOrModelOpt = None,
    fmt: FormatOpt = TableFormat.table,
) -> None:
    """Per-layer table of a variant or of an ONNX model: output shape (C x H x W), parameters,
    MACs, totals."""
    if model is not None:
        _summarize_onnx(model, variant, fmt)
        return
    from alexnet_deploy.models.summary import layer_table
    from alexnet_deploy.models.variants import get_variant

    spec = get_variant((variant or VariantChoice(DEFAULT_VARIANT)).value)
    print_frame(layer_table(spec), fmt, title=f"AlexNet ({spec.name}): {spec.description}")


def _summarize_onnx(model: Path, variant, fmt: TableFormat) -> None:
    from alexnet_deploy.errors import UsageError
    from alexnet_deploy.graph_summary import layer_frame, layers_of_proto
    from alexnet_deploy.onnx_model import info_from_proto, load_model_proto

    if variant is not None:
        raise UsageError(
            "summary takes a model file or --variant, not both",
            hint=f"'summary {model}' reads the model's own graph",
        )
    proto = load_model_proto(model)
    info = info_from_proto(model, proto)
    layers = layers_of_proto(proto, model)
    title = f"{info.model_name} ({model.name}, opset {info.opset}): {len(layers)} nodes"
    print_frame(layer_frame(layers), fmt, title=title)
    if fmt is TableFormat.table:  # the roofline's count beside the table's (graph_summary.py)
        real = sum(x.real_macs for x in layers)
        out_console.print(
            f"MACs count every kernel tap (zero padding included); bench's roofline and plan "
            f"count without zero padding: {real:,} per image",
            highlight=False,
            soft_wrap=True,
        )


def export(
    variant: VariantOrModelOpt = None,
    source: Annotated[
        str | None,
        typer.Option(
            "--from",
            help="Your own PyTorch model instead of a built-in variant: path.py:callable or "
            "package.module:callable, called with no arguments, returning an nn.Module that "
            "takes [batch, 3, H, W] at the card's input size (--preset, --input-size, ...).",
        ),
    ] = None,
    weights: Annotated[
        Path | None,
        typer.Option(
            "--weights",
            help="State-dict checkpoint (torch.save(model.state_dict()), or a checkpoint "
            "holding it under 'state_dict' or 'model'), loaded strictly. Without it, weights "
            "are initialized from --seed and labelled untrained.",
        ),
    ] = None,
    seed: SeedOpt = C.DEFAULT_SEED,
    opset: Annotated[
        int,
        typer.Option(
            "--opset",
            help=f"ONNX opset, {C.MIN_OPSET} to {C.MAX_OPSET}.",
            callback=between(C.MIN_OPSET, C.MAX_OPSET),
        ),
    ] = C.DEFAULT_OPSET,
    softmax: Annotated[
        bool, typer.Option("--softmax", help=f"Also output softmax as '{C.PROBABILITIES_NAME}'.")
    ] = False,
    preprocess: Annotated[
        bool,
        typer.Option(
            "--preprocess",
            help="Bake the preprocessing into the graph: the model takes a decoded RGB image as "
            "uint8 [batch, height, width, 3] of any size and resizes, crops and normalizes it "
            "itself (opset 18+). For deployment; calibrate, build and bench take the float export.",
        ),
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            help="ONNX file to write (default: WORK_DIR/alexnet-VARIANT.onnx, or "
            "WORK_DIR/NAME.onnx with --from).",
        ),
    ] = None,
    work_dir: ModelWorkDirOpt = Path(C.DEFAULT_WORK_DIR),
    force: Annotated[bool, typer.Option("--force", help="Replace an existing output.")] = False,
    preset: PresetOpt = PresetChoice(DEFAULT_PRESET),
    input_size: CardInputSizeOpt = None,
    resize_size: CardResizeSizeOpt = None,
    mean: CardMeanOpt = None,
    std: CardStdOpt = None,
    scale: ScaleOpt = None,
    channel_order: ChannelOrderOpt = None,
    interpolation: InterpolationOpt = None,
    crop: CropOpt = None,
    labels: CardLabelsOpt = None,
    name: NameOpt = None,
) -> None:
    """Export a variant, or your own PyTorch model (--from), to ONNX (dynamic batch) and
    validate it against PyTorch. With --from, the model card flags (--preset, --input-size,
    ..., --name) say how its images are prepared; they travel in the file's metadata."""
    from alexnet_deploy import api
    from alexnet_deploy.exporter.config import ExportConfig

    card = card_options(
        preset=preset,
        name=name,
        input_size=input_size,
        resize_size=resize_size,
        mean=mean,
        std=std,
        scale=scale,
        channel_order=channel_order,
        interpolation=interpolation,
        crop=crop,
        labels=labels,
    )
    config = ExportConfig(opset=opset, softmax=softmax, preprocess=preprocess)
    with status("exporting") as shown:
        chosen = _model_to_export(variant, source, card, weights, shown.update)
        result = api.export(
            output,
            variant=chosen,
            weights=weights,
            seed=seed,
            config=config,
            force=force,
            progress=shown.update,
            work_dir=work_dir,
        )
    _print_export_result(result)
    if source is not None and input_size is None:  # the size it was checked at: the preset's
        err_console.print(
            f"Note: input size {chosen.preprocessing.crop_size} from --preset {preset.value} "
            "(the model ran at it); pass --input-size N for a model that takes another",
            highlight=False,
            soft_wrap=True,
        )


def _model_to_export(variant, source: str | None, card, weights: Path | None, progress):
    """The built-in variant's name, or the user's model (--from) as a Variant with its card;
    card flags without --from, and --variant with it, are usage errors."""
    from alexnet_deploy.errors import UsageError

    given = [
        f"--{k.replace('_', '-')}" for k, v in vars(card).items() if v is not None and k != "preset"
    ] + (["--preset"] if card.preset != DEFAULT_PRESET else [])
    if source is None:
        if given:
            raise UsageError(
                f"{', '.join(given)} describe(s) a model of your own: they go with --from",
                hint="export --from path.py:callable ... (the built-in variants carry their card)",
            )
        return (variant or VariantChoice(DEFAULT_VARIANT)).value
    if variant is not None:
        raise UsageError(
            f"--variant {variant.value} and --from {source} both name the model to export",
            hint="pass one of them",
        )
    from alexnet_deploy.models.user import parse_spec, user_variant

    progress(f"loading {source}")
    default = parse_spec(source).attr
    return user_variant(
        source, card.card(default_name=default, source="export --from"), weights=weights
    )


def _print_export_result(result) -> None:
    import polars as pl

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
    print_table(frame, "ONNX Runtime vs PyTorch (seeded inputs)")
    out_console.print(
        f"wrote {result.model_name} to {result.path} ({result.size_bytes / 1e6:.1f} MB, "
        f"sha256 {result.sha256[:12]}), "
        f"{result.weights.label}; export {result.export_seconds:.1f} s, "
        f"validation {result.validate_seconds:.1f} s; manifest {result.manifest}"
    )
    if result.pixels_check:
        check = result.pixels_check
        out_console.print(
            f"input: {C.PIXELS_INPUT_NAME!r}, uint8 [batch, height, width, 3], any size; the "
            f"graph's resize, crop and normalization against Pillow's on {check['images']} "
            f"images: at most {check['max_levels']:.2f} pixel levels apart "
            f"(mean {check['mean_levels']:.3f})",
            highlight=False,
            markup=False,
        )
