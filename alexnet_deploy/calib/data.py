"""Calibration data: a folder of images, a preprocessed array file, or synthetic inputs.

Sampling is deterministic (sorted listing, shuffled by ``seed``); the first ``calib_size``
samples calibrate and the next ones (up to ``eval_size``) are held out for fidelity. The
manifest lists every file used with its sha256, so an artifact says exactly what it was
calibrated on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from alexnet_deploy import constants as C
from alexnet_deploy.calib.samples import CalibrationData, Split
from alexnet_deploy.calib.sources import from_array, from_folder, shipped_images, synthetic
from alexnet_deploy.errors import AlexnetDeployError, UsageError
from alexnet_deploy.models.variants import Preprocessing


def _load_source(
    data: str,
    *,
    image_shape,
    preprocessing,
    calib_size,
    eval_size,
    seed,
    labels_file,
    holdout,
    cap: int = C.MAX_DEFAULT_CALIB_SIZE,
    what: str = "calibration data",
    preprocessing_flags: bool = False,
):
    if data == C.SYNTHETIC:
        return synthetic(
            image_shape, preprocessing, calib_size=calib_size, eval_size=eval_size, seed=seed
        )
    path = shipped_images() if data == "shipped" else Path(data)
    if not path.exists():
        raise AlexnetDeployError(
            f"{what} {path} not found",
            hint="pass a folder of images, a .npy/.npz file, 'shipped' or 'synthetic'",
        )
    common = dict(
        calib_size=calib_size,
        eval_size=eval_size,
        seed=seed,
        labels_file=labels_file,
        holdout=holdout,
        cap=cap,
    )
    if path.is_dir():
        if preprocessing is None:  # a usage error, as in predict: pass a model with a card
            raise UsageError(
                "the model has no model card, so its image preprocessing is unknown",
                hint="give it one: 'alexnet-deploy import MODEL.onnx --preset imagenet -o "
                "OUT.onnx', then pass OUT.onnx"
                + (
                    " (or pass --input-size, --resize-size, --mean and --std here)"
                    if preprocessing_flags  # the command has them
                    else " (or the images preprocessed, as a float32 .npy/.npz array [N, C, H, W])"
                ),
            )
        if preprocessing.crop_size != image_shape[1]:
            raise AlexnetDeployError(
                f"preprocessing crops {preprocessing.crop_size} px but the model takes {image_shape[1]} px"
            )
        return from_folder(path, preprocessing, **common, what=what)
    if path.suffix.lower() in (".npy", ".npz"):
        return from_array(path, image_shape, **common)
    raise AlexnetDeployError(
        f"{what} {path} is neither a folder nor a .npy/.npz file",
        hint="pass a folder of images or a preprocessed .npy/.npz array",
    )


def load_calibration_data(
    data: str,
    *,
    image_shape,
    preprocessing: Preprocessing | None,
    calib_size=None,
    eval_size=None,
    seed: int = C.DEFAULT_SEED,
    labels_file=None,
    eval_data: str | None = None,
    preprocessing_flags: bool = False,
) -> CalibrationData:
    """Dispatch on ``data``: 'synthetic', 'shipped', a folder, or a .npy/.npz file. With
    ``eval_data``, ``data`` only calibrates and the held-out set is read from ``eval_data``
    (``eval_size`` of it at most). ``preprocessing_flags``: the command takes --input-size,
    --resize-size, --mean and --std (a hint may name them)."""
    common = dict(
        image_shape=image_shape,
        preprocessing=preprocessing,
        seed=seed,
        preprocessing_flags=preprocessing_flags,
    )
    if eval_data is None:
        return _load_source(
            data,
            calib_size=calib_size,
            eval_size=eval_size,
            labels_file=labels_file,
            holdout=True,
            **common,
        )
    calib = _load_source(
        data, calib_size=calib_size, eval_size=None, labels_file=None, holdout=False, **common
    )
    held_out = _load_source(
        eval_data,
        calib_size=None,
        eval_size=None,
        labels_file=labels_file,
        holdout=False,
        cap=eval_size or C.MAX_EVAL_SIZE,
        **common,
    )
    calib.eval = held_out.calib
    calib.source = f"{calib.source} (held out: {held_out.source})"
    calib.skipped += held_out.skipped
    return calib


def load_held_out(
    data: str,
    *,
    image_shape,
    preprocessing: Preprocessing | None,
    count: int | None = None,
    seed: int = C.DEFAULT_SEED,
    labels_file=None,
    what: str = "calibration data",
    preprocessing_flags: bool = False,
) -> CalibrationData:
    """Every sample of ``data`` (``count`` at most, default MAX_EVAL_SIZE) as the held-out set,
    decoded once: for work that needs no calibration (FP16 fidelity, bench's fidelity inputs).
    ``what`` names the data in messages (the option it came from)."""
    loaded = _load_source(
        data,
        image_shape=image_shape,
        preprocessing=preprocessing,
        calib_size=None,
        eval_size=None,
        seed=seed,
        labels_file=labels_file,
        holdout=False,
        cap=count or C.MAX_EVAL_SIZE,
        what=what,
        preprocessing_flags=preprocessing_flags,
    )
    empty = Split(np.zeros((0, *image_shape), np.float32), [], [])
    loaded.eval, loaded.calib = loaded.calib, empty
    return loaded


def images_for_model(
    info, data: str, *, count: int | None, seed: int, what: str = "--data"
) -> CalibrationData:
    """``load_held_out`` with a model's own input shape and preprocessing (its read
    ArtifactInfo): the images bench's fidelity probe, ``bench --inputs`` and ``compare`` run."""
    return load_held_out(
        data,
        image_shape=info.image_shape,
        preprocessing=info.preprocessing(),
        count=count,
        seed=seed,
        what=what,
    )
