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


def resize_crop(image, pre: Preprocessing) -> np.ndarray:
    """Resize the short side to ``resize_size`` (bilinear; smaller images are upscaled) and
    center-crop ``crop_size``: HWC uint8 (what a runtime that normalizes in its graph takes)."""
    from PIL import Image

    width, height = image.size
    scale = pre.resize_size / min(width, height)
    size = (max(pre.crop_size, round(width * scale)), max(pre.crop_size, round(height * scale)))
    image = image.resize(size, Image.Resampling.BILINEAR)
    left = (image.width - pre.crop_size) // 2
    top = (image.height - pre.crop_size) // 2
    return np.asarray(image.crop((left, top, left + pre.crop_size, top + pre.crop_size)))


def preprocess(image, pre: Preprocessing) -> np.ndarray:
    """:func:`resize_crop`, then scale to [0, 1] and normalize: CHW float32."""
    pixels = resize_crop(image, pre).astype(np.float32) / 255.0
    mean = np.asarray(pre.mean, dtype=np.float32)
    std = np.asarray(pre.std, dtype=np.float32)
    return ((pixels - mean) / std).transpose(2, 0, 1).astype(np.float32)
