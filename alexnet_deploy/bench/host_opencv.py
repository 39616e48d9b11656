"""bench --end-to-end's ``host-opencv`` placement: the host's preprocessing (calib/images.py's
rule) done with OpenCV's decode and resize, the OpenCV filter chosen for the model card's Pillow
one. Present when ``opencv-python-headless`` is installed (the ``opencv`` extra)."""

from __future__ import annotations

import numpy as np

from alexnet_deploy.errors import UsageError


def opencv_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("cv2") is not None


def opencv_decode(payload: bytes) -> np.ndarray:
    """JPEG/PNG bytes -> RGB HWC uint8 with OpenCV (its libjpeg-turbo and libpng)."""
    import cv2

    image = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise UsageError("OpenCV could not decode an input image", hint="check the --inputs files")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def opencv_interpolation(interpolation: str, reducing: bool) -> int:
    """OpenCV's filter closest to Pillow's ``interpolation`` (the card's), measured on the
    shipped cat.jpg (385x256) against Pillow, in mean pixel levels. ``nearest``:
    INTER_NEAREST_EXACT, Pillow's pixel centres (0.2 levels off reduced to 56x37; INTER_NEAREST
    shifts them: 15). ``bilinear`` and ``bicubic``: Pillow widens both filters when it reduces
    (antialiasing), which INTER_LINEAR and INTER_CUBIC do not; INTER_AREA averages as they do and
    is the closest when reducing (bicubic to 56x37: 1.1 levels, INTER_CUBIC 5.9); when enlarging,
    Pillow's filters are INTER_LINEAR and INTER_CUBIC (to 2062x1371: 0.2 and 0.4 levels)."""
    import cv2

    if interpolation == "nearest":
        return cv2.INTER_NEAREST_EXACT
    if reducing:
        return cv2.INTER_AREA
    return cv2.INTER_CUBIC if interpolation == "bicubic" else cv2.INTER_LINEAR


def opencv_preprocess(pixels: np.ndarray, pre) -> np.ndarray:
    """The host rule (calib/images.py) with OpenCV's resize: the short side to
    ``resize_size`` with the card's filter (:func:`opencv_interpolation`), center crop,
    scale, normalize, NCHW float32, batch of one."""
    import cv2

    from alexnet_deploy.calib.images import center_crop, normalize, resized_size

    height, width = pixels.shape[:2]
    size = resized_size(width, height, pre)
    method = opencv_interpolation(pre.interpolation, reducing=size[0] < width)
    resized = cv2.resize(pixels, size, interpolation=method)
    return normalize(center_crop(resized, pre.crop_size), pre)[None]
