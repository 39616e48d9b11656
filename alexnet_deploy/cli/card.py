"""The model-card flags, declared once: ``import`` and ``export --from`` take the same ones.

A command lists the aliases below as parameters and hands them to :func:`card_options`, which
makes the :class:`~alexnet_deploy.modelcard.CardOptions` the library takes (the preset and the
fields given over it; labels read from their file).
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from alexnet_deploy.cli.options import PositiveFloat, PositiveInt, _choices, _triple
from alexnet_deploy.modelcard import DEFAULT_PRESET, PRESETS
from alexnet_deploy.models.variants import CHANNEL_ORDERS, CROPS, INTERPOLATIONS

PresetChoice = _choices("PresetChoice", tuple(PRESETS))
ChannelOrderChoice = Enum(
    "ChannelOrderChoice", {v.lower(): v.lower() for v in CHANNEL_ORDERS}, type=str
)
InterpolationChoice = _choices("InterpolationChoice", INTERPOLATIONS)
CropChoice = _choices("CropChoice", CROPS)

PresetOpt = Annotated[
    PresetChoice,
    typer.Option(
        "--preset",
        help="The convention the model was trained with: "
        + "; ".join(f"{name}: {p.description}" for name, p in PRESETS.items())
        + ". The flags below override its fields.",
    ),
]
CardInputSizeOpt = Annotated[
    int | None,
    typer.Option(
        "--input-size",
        help="Side of the square image the model takes (default: the graph's, else the preset's).",
        callback=PositiveInt,
    ),
]
CardResizeSizeOpt = Annotated[
    int | None,
    typer.Option(
        "--resize-size",
        help="Short side the image is resized to before the center crop (default: the preset's "
        "ratio to the input size).",
        callback=PositiveInt,
    ),
]
CardMeanOpt = Annotated[
    str | None,
    typer.Option(
        "--mean",
        help="Per-channel mean 'R,G,B' in the model's channel order, after --scale.",
        callback=_triple(positive=False),
    ),
]
CardStdOpt = Annotated[
    str | None,
    typer.Option(
        "--std",
        help="Per-channel std 'R,G,B' (each above 0), in the model's channel order.",
        callback=_triple(positive=True),
    ),
]
ScaleOpt = Annotated[
    float | None,
    typer.Option(
        "--scale",
        help="Pixels 0..255 are multiplied by this before mean/std (imagenet: 1/255; raw255: 1).",
        callback=PositiveFloat,
    ),
]
ChannelOrderOpt = Annotated[
    ChannelOrderChoice | None,
    typer.Option("--channel-order", help="The channel order the model takes."),
]
InterpolationOpt = Annotated[
    InterpolationChoice | None,
    typer.Option("--interpolation", help="The resize filter (Pillow's)."),
]
CropOpt = Annotated[
    CropChoice | None,
    typer.Option(
        "--crop",
        help="center: resize the short side, then center-crop; none: resize the whole image "
        "to the input size.",
    ),
]
CardLabelsOpt = Annotated[
    Path | None,
    typer.Option("--labels", help="Class names, one per line, one per output (embedded)."),
]
NameOpt = Annotated[
    str | None,
    typer.Option(
        "--name",
        help="The model's name in every report, plot and Triton repository "
        "(default: the file's stem).",
    ),
]


def card_options(
    *,
    preset: PresetChoice = PresetChoice(DEFAULT_PRESET),
    name: str | None = None,
    input_size: int | None = None,
    resize_size: int | None = None,
    mean: tuple | None = None,
    std: tuple | None = None,
    scale: float | None = None,
    channel_order: ChannelOrderChoice | None = None,
    interpolation: InterpolationChoice | None = None,
    crop: CropChoice | None = None,
    labels: Path | None = None,
):
    """The parsed card flags as the library's CardOptions."""
    from alexnet_deploy.modelcard import CardOptions, read_labels

    return CardOptions(
        preset=preset.value,
        name=name,
        input_size=input_size,
        resize_size=resize_size,
        mean=None if mean is None else tuple(mean),
        std=None if std is None else tuple(std),
        scale=scale,
        channel_order=None if channel_order is None else channel_order.value.upper(),
        interpolation=None if interpolation is None else interpolation.value,
        crop=None if crop is None else crop.value,
        labels=None if labels is None else read_labels(labels),
    )
