"""The readers of each calibration data source: a folder of images (class sub-folders or a
labels CSV give labels), a preprocessed .npy/.npz array, synthetic inputs, the shipped photos.
Each returns the sampled, deterministic splits (alexnet_deploy/calib/samples.py)."""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path

import numpy as np

from alexnet_deploy import constants as C
from alexnet_deploy.calib.images import IMAGE_SUFFIXES, images_in, load_rgb, preprocess
from alexnet_deploy.calib.samples import (
    CalibrationData,
    Split,
    require_finite,
    split_sizes,
    stack,
)
from alexnet_deploy.errors import AlexnetDeployError
from alexnet_deploy.fileio import sha256_file
from alexnet_deploy.models.variants import DEFAULT_SCALE, Preprocessing

log = logging.getLogger(__name__)


def _list_images(folder: Path) -> tuple[list[Path], dict[Path, int] | None]:
    files = images_in(folder)
    subdirs = sorted(p for p in folder.iterdir() if p.is_dir())
    labels = None
    # ImageFolder layout: one sub-folder per class, every image inside one of them.
    if subdirs and files and all(f.parent.parent == folder for f in files):
        index = {d.name: i for i, d in enumerate(subdirs)}
        labels = {f: index[f.parent.name] for f in files}
    return files, labels


def _read_labels_csv(path: Path, folder: Path) -> dict[Path, int]:
    labels = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        name, _, label = line.rpartition(",")
        try:
            labels[(folder / name.strip()).resolve()] = int(label)
        except ValueError:
            raise AlexnetDeployError(
                f"{path}:{number}: expected 'relative/path.jpg,label' with an integer label"
            ) from None
    return labels


def from_folder(
    folder: Path,
    pre: Preprocessing,
    *,
    calib_size,
    eval_size,
    seed: int,
    labels_file=None,
    holdout: bool = True,
    cap: int = C.MAX_DEFAULT_CALIB_SIZE,
    what: str = "calibration data",
) -> CalibrationData:
    if not any(folder.iterdir()):
        raise AlexnetDeployError(f"{what} folder {folder} is empty", hint="add images")
    files, labels = _list_images(folder)
    if not files:
        raise AlexnetDeployError(
            f"{what} folder {folder} has no images (looked for {', '.join(IMAGE_SUFFIXES)}, recursively)",
            hint="add images, or pass a preprocessed .npy/.npz array",
        )
    if labels_file is not None:
        by_path = _read_labels_csv(Path(labels_file), folder)
        labels = {f: by_path[f.resolve()] for f in files if f.resolve() in by_path}
        if len(labels) != len(files):
            missing = [str(f.relative_to(folder)) for f in files if f.resolve() not in by_path]
            raise AlexnetDeployError(
                f"{labels_file} has no label for {missing[:3]} ({len(missing)} files)"
            )
    calib_n, eval_n = split_sizes(len(files), calib_size, eval_size, str(folder), holdout, cap)
    needed = calib_n + eval_n
    order = np.random.default_rng(seed).permutation(len(files))
    arrays, used, skipped = [], [], []
    for i in order:  # decode in sampled order, only as many as needed (skipping broken ones)
        if len(used) == needed:
            break
        path = files[i]
        try:
            arrays.append(preprocess(load_rgb(path, pre), pre))
            used.append(path)
        except Exception as err:  # Pillow raises many types for truncated/corrupt files
            skipped.append(
                {"source": str(path.relative_to(folder)), "reason": f"{type(err).__name__}: {err}"}
            )
            log.warning("skipping unreadable image %s: %s", path, err)
    attempted = len(used) + len(skipped)
    if len(skipped) > C.MAX_CORRUPT_FRACTION * attempted:
        raise AlexnetDeployError(
            f"{len(skipped)} of {attempted} images read from {folder} are unreadable "
            f"(more than {C.MAX_CORRUPT_FRACTION:.0%}), first: {skipped[0]['source']} ({skipped[0]['reason']})",
            hint="remove or re-encode the broken files",
        )
    if len(used) < needed:
        calib_n, eval_n = split_sizes(len(used), calib_size, eval_size, str(folder), holdout, cap)

    def split(lo: int, hi: int) -> Split:
        chosen = used[lo:hi]
        part = Split(
            images=stack(arrays[lo:hi], pre.crop_size),
            sources=[str(p.relative_to(folder)) for p in chosen],
            sha256=[sha256_file(p) for p in chosen],
            labels=None if labels is None else np.array([labels[p] for p in chosen]),
        )
        require_finite(
            part.images, f"{folder} preprocessed with mean {pre.mean} and std {pre.std}",
            lambda i: part.sources[i], hint="check the preprocessing: a std of 0 divides by zero",
        )  # fmt: skip
        return part

    return CalibrationData(
        kind="images",
        source=str(folder),
        seed=seed,
        calib=split(0, calib_n),
        eval=split(calib_n, calib_n + eval_n),
        skipped=skipped,
        preprocessing=asdict(pre),
    )


def _array_from_file(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as err:  # ValueError for pickled/corrupt content, OSError, ...
        raise AlexnetDeployError(f"{path} is not a readable .npy/.npz array ({err})") from None
    if isinstance(loaded, np.ndarray):
        return loaded, None
    with loaded:
        keys = list(loaded.keys())
        image_key = next((k for k in ("images", "x", "inputs") if k in keys), None)
        if image_key is None and len(keys) == 1:
            image_key = keys[0]
        if image_key is None:
            raise AlexnetDeployError(
                f"{path} holds arrays {keys}; expected one named 'images' (and optionally 'labels')"
            )
        return loaded[image_key], (loaded["labels"] if "labels" in keys else None)


def from_array(
    path: Path,
    image_shape,
    *,
    calib_size,
    eval_size,
    seed: int,
    labels_file=None,
    holdout: bool = True,
    cap: int = C.MAX_DEFAULT_CALIB_SIZE,
) -> CalibrationData:
    images, labels = _array_from_file(path)
    expected = ("N", *image_shape)
    if images.ndim != 4 or tuple(images.shape[1:]) != tuple(image_shape):
        raise AlexnetDeployError(
            f"{path} has shape {list(images.shape)}, expected {list(expected)} (preprocessed NCHW)",
            hint="preprocess images to the model's input size, or pass the image folder instead",
        )
    if images.dtype != np.float32:
        raise AlexnetDeployError(
            f"{path} has dtype {images.dtype}, expected float32 (preprocessed, normalized)",
            hint="save it with array.astype(np.float32)",
        )
    require_finite(
        images, str(path), lambda i: f"sample {i}",
        hint="drop or repair those samples; calibration needs finite inputs",
    )  # fmt: skip
    if labels_file is not None:
        labels = np.load(labels_file, allow_pickle=False)
    if labels is not None and (labels.ndim != 1 or len(labels) != len(images)):
        raise AlexnetDeployError(
            f"labels for {path} have shape {list(labels.shape)}, expected [{len(images)}]"
        )
    calib_n, eval_n = split_sizes(len(images), calib_size, eval_size, str(path), holdout, cap)
    order = np.random.default_rng(seed).permutation(len(images))
    digest = sha256_file(path)

    def split(lo: int, hi: int) -> Split:
        index = order[lo:hi]
        return Split(
            images=np.ascontiguousarray(images[index]),
            sources=[f"{path.name}[{i}]" for i in index],
            sha256=[digest] * len(index),
            labels=None if labels is None else labels[index].astype(np.int64),
        )

    return CalibrationData(
        kind="array",
        source=str(path),
        seed=seed,
        calib=split(0, calib_n),
        eval=split(calib_n, calib_n + eval_n),
    )


def synthetic(
    image_shape, pre: Preprocessing | None, *, calib_size, eval_size, seed: int
) -> CalibrationData:
    """Uniform random pixels normalized like real inputs. For smoke runs only: labelled
    synthetic in every report, since fidelity on noise says little about real images."""
    calib_n = calib_size or 16
    eval_n = eval_size or 16
    rng = np.random.default_rng(seed)
    pixels = rng.random((calib_n + eval_n, *image_shape), dtype=np.float32)
    if pre is not None:
        if pre.scale != DEFAULT_SCALE:  # pixels 0..1 as 0..255 times the model's scale
            pixels = pixels * np.float32(255 * pre.scale)
        mean = np.asarray(pre.mean, dtype=np.float32).reshape(1, -1, 1, 1)
        std = np.asarray(pre.std, dtype=np.float32).reshape(1, -1, 1, 1)
        pixels = (pixels - mean) / std
    pixels = pixels.astype(np.float32)
    require_finite(
        pixels, f"{C.SYNTHETIC} data normalized with std {None if pre is None else pre.std}",
        lambda i: f"synthetic[{i}]", hint="check the preprocessing: a std of 0 divides by zero",
    )  # fmt: skip

    def split(lo: int, hi: int) -> Split:
        return Split(pixels[lo:hi], [f"synthetic[{i}]" for i in range(lo, hi)], [""] * (hi - lo))

    return CalibrationData(
        kind=C.SYNTHETIC,
        source=f"{C.SYNTHETIC} (seed {seed})",
        seed=seed,
        calib=split(0, calib_n),
        eval=split(calib_n, calib_n + eval_n),
        preprocessing=None if pre is None else asdict(pre),
    )


def shipped_images() -> Path:
    """The sample photographs bundled with the package (see data/images/SOURCES.md)."""
    return Path(__file__).resolve().parents[1] / "data" / "images"
