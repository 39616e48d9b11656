"""Seeded input batches, the same on every run: image-like pixels normalized as the variant says."""

from __future__ import annotations

import numpy as np

from alexnet_deploy.models.variants import Variant


def seeded_images(variant: Variant, batch: int, seed: int) -> np.ndarray:
    """``batch`` random images of the variant's input size, uniform in [0, 1] per pixel and then
    normalized with its mean/std: NCHW float32, identical for identical arguments."""
    rng = np.random.default_rng(seed)
    pixels = rng.random((batch, *variant.input_shape), dtype=np.float32)
    mean = np.asarray(variant.preprocessing.mean, dtype=np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(variant.preprocessing.std, dtype=np.float32).reshape(1, 3, 1, 1)
    return ((pixels - mean) / std).astype(np.float32)
