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


@dataclass(frozen=True)
class Preprocessing:
    """Resize the short side to ``resize_size``, center-crop ``crop_size``, scale to [0, 1],
    normalize per channel with ``mean``/``std``, lay out as NCHW float32."""

    resize_size: int
    crop_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    factory: Callable[[], nn.Module]
    preprocessing: Preprocessing
    num_params: int
    num_classes: int = 1000
    choices: tuple[str, ...] = field(default=())

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
