"""Image file -> preprocessed CHW float32 array, with the model's declared preprocessing.

One decoder for every stage that reads images (predict, calibration and fidelity folders,
bench --inputs, compare, the end-to-end bench): the image as a viewer shows it, its cost bounded
from its header before any pixel is decoded."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np

from alexnet_deploy import constants as C
from alexnet_deploy.errors import AlexnetDeployError
from alexnet_deploy.models.variants import Preprocessing

# What a folder is searched for and what a file named directly may be: one list for both
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff")
WHITE = (255, 255, 255, 255)


def images_in(folder: Path) -> list[Path]:
    """The image files under ``folder`` (recursive, by :data:`IMAGE_SUFFIXES`), sorted."""
    return sorted(
        p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )


def check_size(width: int, height: int, pre: Preprocessing | None = None) -> None:
    """Refuse an image over :data:`C.MAX_IMAGE_PIXELS`, or (with ``pre``) one whose short
    side's resize would give a side over :data:`C.MAX_RESIZED_SIDE`: before it is decoded."""
    if width * height > C.MAX_IMAGE_PIXELS:
        raise AlexnetDeployError(
            f"{width}x{height} pixels is over the limit of {C.MAX_IMAGE_PIXELS:,} pixels an "
            "image may have (MAX_IMAGE_PIXELS)",
            hint="downscale the image first",
        )
    if pre is not None:
        resized_size(width, height, pre)


def _open(source):
    from PIL import Image

    with warnings.catch_warnings():  # the size is judged by check_size, against our limit
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            return Image.open(source)
        except Image.DecompressionBombError as err:
            raise AlexnetDeployError(
                f"{err} (over the limit of {C.MAX_IMAGE_PIXELS:,} pixels, MAX_IMAGE_PIXELS)",
                hint="downscale the image first",
            ) from None


def _to_rgb(image):
    """RGB as a viewer shows it: palette and greyscale expanded, transparency composited over
    white, 16-bit greyscale scaled (65535 -> 255), CMYK through its ICC profile when it has one."""
    from PIL import Image, ImageCms

    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        pixels = np.asarray(image, dtype=np.float64)
        if image.mode != "F":
            pixels = pixels / 257  # 16 bits a level: 65535 -> 255
        elif pixels.max(initial=0) <= 1:
            pixels = pixels * 255  # floats in [0, 1]
        image = Image.fromarray(np.clip(np.round(pixels), 0, 255).astype(np.uint8))
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("LA", "La", "PA", "RGBA", "RGBa"):
        rgba = image.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, WHITE), rgba).convert("RGB")
    if image.mode == "CMYK" and image.info.get("icc_profile"):
        profile = ImageCms.ImageCmsProfile(io.BytesIO(image.info["icc_profile"]))
        return ImageCms.profileToProfile(
            image, profile, ImageCms.createProfile("sRGB"), outputMode="RGB"
        )
    return image.convert("RGB")


def check_header(source, pre: Preprocessing | None = None) -> None:
    """:func:`check_size` from the file's header alone (no pixel decoded)."""
    with _open(source) as image:
        check_size(*image.size, pre)


def load_rgb(source, pre: Preprocessing | None = None):
    """Decode an image file (or file object) with Pillow as a viewer shows it: EXIF
    orientation applied, an animation's first frame, any mode to RGB (:func:`_to_rgb`). Its
    size is checked from the header first (:func:`check_size`; with ``pre``, the resize too)."""
    from PIL import ImageOps

    with _open(source) as image:
        check_size(*image.size, pre)
        image.seek(0)
        image.load()
        ImageOps.exif_transpose(image, in_place=True)
        return _to_rgb(image)


def resized_size(width: int, height: int, pre: Preprocessing) -> tuple[int, int]:
    """(width, height) after the short side goes to ``resize_size``: each side rounded, never
    below the crop. The one rule every host library and the in-graph preprocessing follow;
    refused beyond :data:`C.MAX_RESIZED_SIDE` (a thin strip would take gigabytes)."""
    if pre.crop == "none":  # the whole image squeezed to the model's square
        return pre.crop_size, pre.crop_size
    scale = pre.resize_size / min(width, height)
    size = max(pre.crop_size, round(width * scale)), max(pre.crop_size, round(height * scale))
    if max(size) > C.MAX_RESIZED_SIDE:
        raise AlexnetDeployError(
            f"{width}x{height} pixels: resizing its short side to {pre.resize_size} would make "
            f"it {size[0]}x{size[1]}, over the limit of {C.MAX_RESIZED_SIDE:,} pixels a side "
            "(MAX_RESIZED_SIDE)",
            hint="crop the image closer to the model's aspect first",
        )
    return size


def center_crop(pixels: np.ndarray, size: int) -> np.ndarray:
    """The centered ``size`` x ``size`` window of an HWC array (offsets rounded down)."""
    top = (pixels.shape[0] - size) // 2
    left = (pixels.shape[1] - size) // 2
    return pixels[top : top + size, left : left + size]


def resize_crop(image, pre: Preprocessing) -> np.ndarray:
    """Resize the short side to ``resize_size`` (``pre.interpolation``, bilinear by default;
    smaller images are upscaled) and center-crop ``crop_size`` (``crop`` "none": the whole
    image resized to the square): HWC uint8 RGB (what a runtime that normalizes in its graph
    takes)."""
    from PIL import Image

    method = getattr(Image.Resampling, pre.interpolation.upper())
    image = image.resize(resized_size(*image.size, pre), method)
    return center_crop(np.asarray(image), pre.crop_size)


def normalize(pixels: np.ndarray, pre: Preprocessing) -> np.ndarray:
    """HWC uint8 RGB pixels times ``pre.scale`` ([0, 1] by default), in the model's channel
    order, normalized: CHW float32."""
    # dividing by 1/scale (255.0 by default) keeps the default's float32 results bit-identical
    scaled = pixels.astype(np.float32) / np.float32(1 / pre.scale)
    if pre.channel_order == "BGR":
        scaled = scaled[..., ::-1]
    mean = np.asarray(pre.mean, dtype=np.float32)
    std = np.asarray(pre.std, dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):  # a zero std: require_finite names it
        return ((scaled - mean) / std).transpose(2, 0, 1).astype(np.float32)


def preprocess(image, pre: Preprocessing) -> np.ndarray:
    """:func:`resize_crop`, then :func:`normalize`: CHW float32."""
    return normalize(resize_crop(image, pre), pre)
