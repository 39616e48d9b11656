"""Image file -> preprocessed CHW float32 array, with the variant's declared constants."""

from __future__ import annotations

import numpy as np

from alexnet_deploy.models.variants import Preprocessing

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def load_rgb(path):
    """Decode with Pillow and convert any mode (L, LA, P, RGBA, CMYK, I;16) to RGB.
    Transparent pixels keep their colour values (alpha is dropped, not composited)."""
    from PIL import Image

    with Image.open(path) as image:
        image.load()
        if image.mode in ("I;16", "I;16B", "I", "F"):
            pixels = np.asarray(image, dtype=np.float64)
            span = max(float(pixels.max() - pixels.min()), 1e-9)
            image = Image.fromarray(((pixels - pixels.min()) * 255 / span).astype(np.uint8))
        return image.convert("RGB")


def resized_size(width: int, height: int, pre: Preprocessing) -> tuple[int, int]:
    """(width, height) after the short side goes to ``resize_size``: each side rounded, never
    below the crop. The one rule every host library and the in-graph preprocessing follow."""
    scale = pre.resize_size / min(width, height)
    return max(pre.crop_size, round(width * scale)), max(pre.crop_size, round(height * scale))


def center_crop(pixels: np.ndarray, size: int) -> np.ndarray:
    """The centered ``size`` x ``size`` window of an HWC array (offsets rounded down)."""
    top = (pixels.shape[0] - size) // 2
    left = (pixels.shape[1] - size) // 2
    return pixels[top : top + size, left : left + size]


def resize_crop(image, pre: Preprocessing) -> np.ndarray:
    """Resize the short side to ``resize_size`` (bilinear; smaller images are upscaled) and
    center-crop ``crop_size``: HWC uint8 (what a runtime that normalizes in its graph takes)."""
    from PIL import Image

    image = image.resize(resized_size(*image.size, pre), Image.Resampling.BILINEAR)
    return center_crop(np.asarray(image), pre.crop_size)


def normalize(pixels: np.ndarray, pre: Preprocessing) -> np.ndarray:
    """HWC uint8 pixels scaled to [0, 1] and normalized: CHW float32."""
    scaled = pixels.astype(np.float32) / 255.0
    mean = np.asarray(pre.mean, dtype=np.float32)
    std = np.asarray(pre.std, dtype=np.float32)
    return ((scaled - mean) / std).transpose(2, 0, 1).astype(np.float32)


def preprocess(image, pre: Preprocessing) -> np.ndarray:
    """:func:`resize_crop`, then :func:`normalize`: CHW float32."""
    return normalize(resize_crop(image, pre), pre)
