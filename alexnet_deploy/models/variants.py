"""Each AlexNet variant as declared data: how to build it, what it eats, what it should weigh.

The model, its input size and its normalization constants travel together here (the pattern of
torchvision's ``AlexNet_Weights``); nothing else in the package repeats these numbers.
Importing this module is cheap: torch is imported only when a model is built.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from alexnet_deploy.errors import UsageError

if TYPE_CHECKING:
    from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# What the four fields after ``std`` take; the first of each is AlexNet's (the default).
CROPS = ("center", "none")
CHANNEL_ORDERS = ("RGB", "BGR")
INTERPOLATIONS = ("bilinear", "bicubic", "nearest")
DEFAULT_SCALE = 1 / 255  # pixels 0..255 to [0, 1], torchvision's ToTensor


@dataclass(frozen=True)
class Preprocessing:
    """Resize the short side to ``resize_size`` (``interpolation``), center-crop ``crop_size``
    (``crop`` "none": resize the whole image to ``crop_size`` square instead), multiply the
    pixels 0..255 by ``scale``, order the channels (``channel_order``), normalize per channel
    with ``mean``/``std`` (in that order), lay out as NCHW float32. The defaults of the last
    four fields are AlexNet's: a record made from the first four behaves exactly as before."""

    resize_size: int
    crop_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    scale: float = DEFAULT_SCALE
    channel_order: str = CHANNEL_ORDERS[0]
    interpolation: str = INTERPOLATIONS[0]
    crop: str = CROPS[0]

    @property
    def pixels_as_exported(self) -> bool:
        """Center crop, bilinear, RGB, pixels scaled to [0, 1]: the preprocessing that
        ``export --preprocess`` and the end-to-end bench's in-graph placements reproduce."""
        return not self.beyond_pixel_graph

    @property
    def beyond_pixel_graph(self) -> list[str]:
        """What of this preprocessing the in-graph forms do not reproduce, one item per field
        ("crop none", "channel order BGR", "scale 1"); empty where they reproduce it."""
        fields = {
            "crop": (self.crop, CROPS[0]),
            "interpolation": (self.interpolation, INTERPOLATIONS[0]),
            "channel order": (self.channel_order, CHANNEL_ORDERS[0]),
            "scale": (self.scale, DEFAULT_SCALE),
        }
        return [
            f"{name} {value:g}" if isinstance(value, int | float) else f"{name} {value}"
            for name, (value, wanted) in fields.items()
            if value != wanted
        ]


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    factory: Callable[[], nn.Module]
    preprocessing: Preprocessing
    num_params: int
    num_classes: int = 1000
    choices: tuple[str, ...] = field(default=())
    # a user's model (export --from, models/user.py): its card and origin, written into the
    # export's metadata in place of a variant name; empty for the built-in networks
    metadata: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def model_name(self) -> str:
        """What outputs call it (ArtifactInfo.model_name's rule): ``alexnet-<name>`` for a
        built-in network, the card's name for a user's."""
        return self.metadata.get("model_name") or f"alexnet-{self.name}"

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one input image."""
        size = self.preprocessing.crop_size
        return (3, size, size)

    def build(self) -> nn.Module:
        """A fresh model in eval mode, initialized from torch's current RNG state."""
        return self.factory().eval()


def _torchvision() -> nn.Module:
    from alexnet_deploy.models.alexnet import AlexNetTorchvision

    return AlexNetTorchvision()


def _paper() -> nn.Module:
    from alexnet_deploy.models.alexnet import AlexNetPaper

    return AlexNetPaper()


VARIANTS: dict[str, Variant] = {
    "torchvision": Variant(
        name="torchvision",
        description="torchvision's AlexNet (one-weird-trick revision), loads torchvision checkpoints",
        factory=_torchvision,
        preprocessing=Preprocessing(256, 224, IMAGENET_MEAN, IMAGENET_STD),
        num_params=61_100_840,
    ),
    "paper": Variant(
        name="paper",
        description="the 2012 paper's network: LRN, groups=2, 227x227 input",
        factory=_paper,
        # The paper subtracted a per-pixel mean image of its training set, which is not
        # distributed; the per-channel ImageNet mean/std is the standard stand-in.
        preprocessing=Preprocessing(256, 227, IMAGENET_MEAN, IMAGENET_STD),
        num_params=60_965_224,
        choices=(
            "input 227x227 (conv1 11x11/s4/p0 gives exactly 55x55; 224 would give 54)",
            "conv2 filters 5x5x48 (groups=2 over 96 channels; the text's 5x5x28 is a typo)",
            "pool5 output 6x6x256 = 9216 (the text's '6 x 5 256' is a typo)",
            "order ReLU -> max-pool -> LRN, as the text says (the paper: LRN before pooling)",
            "LRN alpha=1e-4 applied to the raw sum of squares, as the paper's formula",
            "dropout after the ReLU of fc6 and fc7, as the text's table",
        ),
    ),
}

DEFAULT_VARIANT = "torchvision"


def get_variant(name: str) -> Variant:
    try:
        return VARIANTS[name]
    except KeyError:
        known = ", ".join(VARIANTS)
        raise UsageError(f"unknown variant {name!r}", hint=f"choose one of: {known}") from None


def register_variant(variant: Variant) -> None:
    """Make another network (same input/output contract) known to export and the torch
    backend; the project's tests register a small trained one this way."""
    VARIANTS[variant.name] = variant
