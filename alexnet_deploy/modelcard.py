"""The model card: how any ONNX image classifier's images are prepared and what its classes are.

One typed record (:class:`ModelCard`) for every model, AlexNet or a user's: input and resize
size, crop, scale, channel order, mean/std, interpolation, the user's layout, labels. It is
written into an artifact's ``alexnet_deploy.*`` metadata (``import``, ``export --from``) and
read back by every stage through ``ArtifactInfo.preprocessing()`` / ``ArtifactInfo.labels``,
so nothing downstream is special-cased by a model's name (torchvision's ``Weights.transforms``
and ``meta["categories"]`` are the pattern). Presets name the common conventions.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace

from alexnet_deploy.errors import AlexnetDeployError, UsageError
from alexnet_deploy.models.variants import (
    CHANNEL_ORDERS,
    CROPS,
    DEFAULT_SCALE,
    IMAGENET_MEAN,
    IMAGENET_STD,
    INTERPOLATIONS,
    Preprocessing,
)

LAYOUTS = ("NCHW", "NHWC")
SOURCES = ("import", "export --from")
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # a file, Triton and report name


@dataclass(frozen=True)
class Preset:
    """A common convention: what a model trained that way expects."""

    input_size: int
    resize_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    scale: float = DEFAULT_SCALE
    channel_order: str = "RGB"
    interpolation: str = "bilinear"
    crop: str = "center"
    description: str = ""


PRESETS: dict[str, Preset] = {
    "imagenet": Preset(
        224, 256, IMAGENET_MEAN, IMAGENET_STD,
        description="torchvision/timm ImageNet: 256 short side, 224 center crop, RGB [0, 1], "
        "ImageNet mean/std",
    ),
    "inception": Preset(
        299, 342, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5),
        description="Inception-style: 342 short side, 299 center crop, RGB [0, 1] to [-1, 1]",
    ),
    "raw255": Preset(
        224, 256, (103.94, 116.78, 123.68), (1.0, 1.0, 1.0), scale=1.0, channel_order="BGR",
        description="Caffe-style: BGR pixels 0..255 minus the per-channel mean, no std",
    ),
    "clip": Preset(
        224, 224, (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711),
        interpolation="bicubic",
        description="OpenAI CLIP: bicubic 224 short side, 224 center crop, CLIP's mean/std",
    ),
}  # fmt: skip
DEFAULT_PRESET = "imagenet"  # AlexNet's own convention, and the most common one


@dataclass(frozen=True)
class ModelCard:
    """Everything a stage needs to feed a classifier real images and name its classes. The
    fields are checked as the card is made: one :class:`AlexnetDeployError` per problem."""

    name: str
    input_size: int
    resize_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    scale: float = DEFAULT_SCALE
    channel_order: str = "RGB"
    interpolation: str = "bilinear"
    crop: str = "center"
    layout: str = "NCHW"  # the user's model's input layout (an NHWC one's copy takes NCHW)
    labels: tuple[str, ...] | None = None
    num_classes: int | None = None
    source: str = "import"
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not NAME_PATTERN.fullmatch(self.name):
            raise UsageError(
                f"model name {self.name!r} is not usable in file, report and Triton names",
                hint="letters, digits, '.', '_' and '-', starting with a letter or digit, "
                "at most 64 characters (--name)",
            )
        for what, size in (("input size", self.input_size), ("resize size", self.resize_size)):
            if not isinstance(size, int) or size < 1:
                raise UsageError(f"the {what} must be a positive whole number, got {size}")
        if self.crop == "center" and self.resize_size < self.input_size:
            raise UsageError(
                f"the resize size {self.resize_size} is below the input size {self.input_size}: "
                "a center crop cannot be larger than the resized image",
                hint="pass --resize-size at least --input-size",
            )
        for what, values in (("mean", self.mean), ("std", self.std)):
            if len(values) != 3 or not all(math.isfinite(v) for v in values):
                raise UsageError(
                    f"the {what} takes three finite numbers, one per channel in the model's "
                    f"channel order ({self.channel_order}), got {values}"
                )
        if min(self.std) <= 0:
            raise UsageError(f"each std divides the pixels: it must be above 0, got {self.std}")
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise UsageError(
                f"the scale multiplies the pixels: it must be above 0, got {self.scale}"
            )
        for what, value, allowed in (
            ("channel order", self.channel_order, CHANNEL_ORDERS),
            ("interpolation", self.interpolation, INTERPOLATIONS),
            ("crop", self.crop, CROPS),
            ("layout", self.layout, LAYOUTS),
        ):
            if value not in allowed:
                raise UsageError(f"{what} {value!r} is not one of {', '.join(allowed)}")
        known = self.labels is not None and self.num_classes is not None
        if known and len(self.labels) != self.num_classes:
            raise UsageError(
                f"the labels name {len(self.labels)} classes; the model has "
                f"{self.num_classes} outputs",
                hint="pass a labels file with one class name per line, one per output",
            )

    @classmethod
    def from_preset(cls, preset: str = DEFAULT_PRESET, **overrides) -> ModelCard:
        """A card from ``preset`` with the given fields replaced (None: the preset's). An input
        size without a resize size keeps the preset's ratio (imagenet at 160: resize 183)."""
        try:
            base = PRESETS[preset]
        except KeyError:
            raise UsageError(
                f"unknown preset {preset!r}", hint=f"choose one of: {', '.join(PRESETS)}"
            ) from None
        given = {k: v for k, v in overrides.items() if v is not None}
        input_size = given.get("input_size", base.input_size)
        if "resize_size" not in given:
            given["resize_size"] = (
                input_size
                if given.get("crop", base.crop) == "none"
                else round(input_size * base.resize_size / base.input_size)
            )
        fields = {k: getattr(base, k) for k in Preset.__dataclass_fields__ if k != "description"}
        return cls(**{**fields, **given})

    def preprocessing(self) -> Preprocessing:
        return Preprocessing(
            resize_size=self.resize_size,
            crop_size=self.input_size,
            mean=tuple(self.mean),
            std=tuple(self.std),
            scale=self.scale,
            channel_order=self.channel_order,
            interpolation=self.interpolation,
            crop=self.crop,
        )

    def check_model(self, height_width: tuple | None, classes: int | None) -> ModelCard:
        """This card against a graph: its fixed H and W (None or a symbolic side: any size)
        and its number of outputs; returns the card with ``num_classes`` filled in."""
        fixed = [d for d in (height_width or ()) if isinstance(d, int) and d > 0]
        if len(set(fixed)) > 1:
            raise AlexnetDeployError(
                f"the model takes {fixed[0]}x{fixed[1]} pixels (height x width): this tool feeds "
                "square images (the crop is square)",
                hint="export the model with a square input, or with symbolic height and width",
            )
        if fixed and any(d != self.input_size for d in fixed):
            raise UsageError(
                f"the card says input size {self.input_size} but the model takes "
                f"{'x'.join(str(d) for d in height_width)} pixels",
                hint=f"pass --input-size {fixed[0]} (or leave it out: the graph's size is used)",
            )
        return replace(self, num_classes=classes)

    def to_metadata(self) -> dict[str, str]:
        """The card as metadata values (strings; the ``alexnet_deploy.`` prefix is added by the
        writer). :meth:`from_metadata` reads them back."""
        values = {
            "model_name": self.name,
            "input_size": str(self.input_size),
            "resize_size": str(self.resize_size),
            "crop": self.crop,
            "mean": json.dumps(list(self.mean)),
            "std": json.dumps(list(self.std)),
            "scale": repr(float(self.scale)),
            "channel_order": self.channel_order,
            "layout": self.layout,
            "interpolation": self.interpolation,
            "source": self.source,
            **self.extra,
        }
        if self.num_classes is not None:
            values["num_classes"] = str(self.num_classes)
        if self.labels is not None:
            values["labels"] = json.dumps(list(self.labels))
        return values

    @classmethod
    def from_metadata(cls, meta: dict[str, str], fallback_name: str = "model") -> ModelCard | None:
        """The card an artifact's metadata (prefix stripped) holds; None where it says nothing
        of its preprocessing."""
        if not {"input_size", "resize_size", "mean", "std"} <= meta.keys():
            return None
        name = meta.get("model_name") or (
            f"alexnet-{meta['variant']}" if "variant" in meta else fallback_name
        )
        try:
            return cls(
                name=name,
                input_size=int(meta["input_size"]),
                resize_size=int(meta["resize_size"]),
                mean=tuple(json.loads(meta["mean"])),
                std=tuple(json.loads(meta["std"])),
                scale=float(meta.get("scale", DEFAULT_SCALE)),
                channel_order=meta.get("channel_order", "RGB"),
                interpolation=meta.get("interpolation", "bilinear"),
                crop=meta.get("crop", "center"),
                layout=meta.get("layout", "NCHW"),
                labels=tuple(json.loads(meta["labels"])) if meta.get("labels") else None,
                num_classes=int(meta["num_classes"]) if meta.get("num_classes") else None,
                source=meta.get("source", "export"),
            )
        except (ValueError, TypeError) as err:
            raise AlexnetDeployError(
                f"the model card in the metadata cannot be read ({err})",
                hint="import the original model again: 'alexnet-deploy import MODEL.onnx'",
            ) from None


@dataclass(frozen=True)
class CardOptions:
    """What the user asked for (the card flags of ``import`` and ``export --from``): a preset
    and the fields given over it (None: the preset's, or the graph's input size)."""

    preset: str = DEFAULT_PRESET
    name: str | None = None
    input_size: int | None = None
    resize_size: int | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    scale: float | None = None
    channel_order: str | None = None
    interpolation: str | None = None
    crop: str | None = None
    labels: tuple[str, ...] | None = None

    def card(
        self, *, default_name: str, graph_size: int | None = None, source: str = "import"
    ) -> ModelCard:
        """The card: the preset, the given fields over it, the input size from the graph
        (``graph_size``) where none was given, and ``default_name`` where no name was."""
        fields = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "preset"}
        fields["name"] = self.name or safe_name(default_name)
        if fields["input_size"] is None:
            fields["input_size"] = graph_size
        return ModelCard.from_preset(self.preset, source=source, **fields)


def safe_name(text: str) -> str:
    """``text`` (a file's stem) as a model name: other characters become '-'."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-._")[:64]
    return name or "model"


def read_labels(path) -> tuple[str, ...]:
    """Class names from a text file, one per line (blank lines skipped)."""
    from pathlib import Path

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"--labels {path} cannot be read ({err})") from None
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if not names:
        raise UsageError(f"--labels {path} has no class names", hint="one name per line")
    return names
