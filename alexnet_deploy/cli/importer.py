"""import: give any ONNX image classifier a model card (a copy; the user's file is only read)."""

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
from alexnet_deploy.cli.console import err_console, out_console, print_frame, status
from alexnet_deploy.cli.options import ForceOpt, FormatOpt, ModelWorkDirOpt
from alexnet_deploy.modelcard import DEFAULT_PRESET
from alexnet_deploy.render import TableFormat


def import_(
    model: Annotated[Path, typer.Argument(help="Any ONNX image classifier (it is only read).")],
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="The copy to write (default: WORK_DIR/NAME.onnx)."),
    ] = None,
    work_dir: ModelWorkDirOpt = Path(C.DEFAULT_WORK_DIR),
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
    force: ForceOpt = False,
    fmt: FormatOpt = TableFormat.table,
) -> None:
    """Copy an ONNX image classifier with its model card (preprocessing, labels, name) in its
    metadata, a dynamic batch where the graph allows it, NCHW input: then every command takes it."""
    from alexnet_deploy.importer import import_model

    options = card_options(
        preset=preset, name=name, input_size=input_size, resize_size=resize_size, mean=mean,
        std=std, scale=scale, channel_order=channel_order, interpolation=interpolation,
        crop=crop, labels=labels,
    )  # fmt: skip
    with status("importing") as shown:
        result = import_model(
            model, output, options, force=force, progress=shown.update, work_dir=work_dir
        )
    print_frame(card_frame(result.card), fmt, title=f"model card of {result.card.name}")
    for warning in result.warnings:
        err_console.print(f"Warning: {warning}", highlight=False, markup=False, soft_wrap=True)
    if fmt is TableFormat.table:
        for note in result.notes:
            out_console.print(note, highlight=False, markup=False, soft_wrap=True)
        out_console.print(
            f"wrote {result.path} ({result.size_bytes / 1e6:.1f} MB, sha256 "
            f"{result.sha256[:12]}); {model} was not modified",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


def card_frame(card):
    """The card as a two-column table: what was recorded."""
    import polars as pl

    def triple(values) -> str:
        return ", ".join(f"{v:g}" for v in values)

    labels = "none (class N)" if card.labels is None else f"{len(card.labels)} names"
    rows = [
        ("name", card.name),
        ("input", f"{card.input_size}x{card.input_size}, {card.layout} in the model"),
        ("resize", f"short side {card.resize_size}" if card.crop == "center" else "whole image"),
        ("crop", card.crop),
        ("interpolation", card.interpolation),
        ("scale", f"{card.scale:.6g}"),
        ("channel order", card.channel_order),
        ("mean", triple(card.mean)),
        ("std", triple(card.std)),
        ("classes", str(card.num_classes)),
        ("labels", labels),
    ]
    return pl.DataFrame({"field": [r[0] for r in rows], "value": [r[1] for r in rows]})
