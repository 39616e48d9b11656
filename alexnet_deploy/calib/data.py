"""Calibration data: a folder of images, a preprocessed array file, or synthetic inputs.

Sampling is deterministic (sorted listing, shuffled by ``seed``); the first ``calib_size``
samples calibrate and the next ones (up to ``eval_size``) are held out for fidelity. The
manifest lists every file used with its sha256, so an artifact says exactly what it was
calibrated on.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from alexnet_deploy import constants as C
from alexnet_deploy.calib.images import IMAGE_SUFFIXES, load_rgb, preprocess
from alexnet_deploy.errors import AlexnetDeployError, UsageError
from alexnet_deploy.fileio import sha256_file
from alexnet_deploy.models.variants import Preprocessing

log = logging.getLogger(__name__)


@dataclass
class Split:
    images: np.ndarray  # N x C x H x W float32
    sources: list[str]
    sha256: list[str]
    labels: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.images)

    def batches(self, batch_size: int):
        for start in range(0, len(self.images), batch_size):
            yield self.images[start : start + batch_size]


@dataclass
class CalibrationData:
    kind: str  # "images", "array" or "synthetic"
    source: str
    seed: int
    calib: Split
    eval: Split
    skipped: list[dict] = field(default_factory=list)

    @property
    def synthetic(self) -> bool:
        return self.kind == C.SYNTHETIC

    @property
    def labelled(self) -> bool:
        return self.eval.labels is not None

    def manifest(self) -> dict:
        def rows(split: Split) -> list[dict]:
            labels = split.labels if split.labels is not None else [None] * len(split)
            return [
                {"source": s, "sha256": h, "label": None if lab is None else int(lab)}
                for s, h, lab in zip(split.sources, split.sha256, labels, strict=True)
            ]

        return {
            "kind": self.kind,
            "synthetic": self.synthetic,
            "source": self.source,
            "seed": self.seed,
            "calibration": rows(self.calib),
            "held_out": rows(self.eval),
            "skipped": self.skipped,
        }

    def key(self) -> str:
        """Content hash of what was sampled (files, order, labels): the cache key's data part."""
        text = json.dumps({**self.manifest(), "source": None}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


def _sizes(
    available: int,
    calib_size: int | None,
    eval_size: int | None,
    where: str,
    holdout: bool,
    cap: int = C.MAX_DEFAULT_CALIB_SIZE,
):
    """(calibration count, held-out count). Without ``holdout`` every sample may calibrate
    (the held-out set then comes from another source, --eval-data)."""
    if calib_size is not None and calib_size < 1:
        raise UsageError(f"--calib-size must be at least 1, got {calib_size}")
    if eval_size is not None and eval_size < 1:
        raise UsageError(f"--eval-size must be at least 1, got {eval_size}")
    needed = 2 if holdout else 1
    if available < needed:
        raise AlexnetDeployError(
            f"{where} has {available} usable sample(s); at least {needed} are needed"
            + (" (some to calibrate, some held out to measure fidelity)" if holdout else ""),
            hint="add images, or use --data synthetic for a smoke run",
        )
    if not holdout:
        calib = calib_size if calib_size is not None else min(available, cap)
        if calib > available:
            raise AlexnetDeployError(
                f"--calib-size {calib} is larger than the {available} samples available in {where}",
                hint=f"pass --calib-size {available} or less",
            )
        return calib, 0
    calib = calib_size if calib_size is not None else min(available // 2, C.MAX_DEFAULT_CALIB_SIZE)
    if calib >= available:
        raise AlexnetDeployError(
            f"--calib-size {calib} is not smaller than the {available} samples available in {where}",
            hint=f"pass --calib-size {available - 1} or less (at least one sample is held out), "
            "or give the held-out set separately with --eval-data",
        )
    evaluate = min(available - calib, eval_size or C.MAX_EVAL_SIZE)
    return calib, evaluate


def _stack(arrays: list[np.ndarray], size: int) -> np.ndarray:
    return np.stack(arrays) if arrays else np.zeros((0, 3, size, size), np.float32)


def _list_images(folder: Path) -> tuple[list[Path], dict[Path, int] | None]:
    files = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
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
) -> CalibrationData:
    if not any(folder.iterdir()):
        raise AlexnetDeployError(
            f"calibration folder {folder} is empty", hint="add JPEG or PNG images"
        )
    files, labels = _list_images(folder)
    if not files:
        raise AlexnetDeployError(
            f"calibration folder {folder} has no images (looked for {', '.join(IMAGE_SUFFIXES)}, recursively)",
            hint="add JPEG or PNG images, or pass a preprocessed .npy/.npz array",
        )
    if labels_file is not None:
        by_path = _read_labels_csv(Path(labels_file), folder)
        labels = {f: by_path[f.resolve()] for f in files if f.resolve() in by_path}
        if len(labels) != len(files):
            missing = [str(f.relative_to(folder)) for f in files if f.resolve() not in by_path]
            raise AlexnetDeployError(
                f"{labels_file} has no label for {missing[:3]} ({len(missing)} files)"
            )
    calib_n, eval_n = _sizes(len(files), calib_size, eval_size, str(folder), holdout, cap)
    needed = calib_n + eval_n
    order = np.random.default_rng(seed).permutation(len(files))
    arrays, used, skipped = [], [], []
    for i in order:  # decode in sampled order, only as many as needed (skipping broken ones)
        if len(used) == needed:
            break
        path = files[i]
        try:
            arrays.append(preprocess(load_rgb(path), pre))
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
        calib_n, eval_n = _sizes(len(used), calib_size, eval_size, str(folder), holdout, cap)

    def split(lo: int, hi: int) -> Split:
        chosen = used[lo:hi]
        return Split(
            images=_stack(arrays[lo:hi], pre.crop_size),
            sources=[str(p.relative_to(folder)) for p in chosen],
            sha256=[sha256_file(p) for p in chosen],
            labels=None if labels is None else np.array([labels[p] for p in chosen]),
        )

    return CalibrationData(
        kind="images",
        source=str(folder),
        seed=seed,
        calib=split(0, calib_n),
        eval=split(calib_n, calib_n + eval_n),
        skipped=skipped,
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
    if labels_file is not None:
        labels = np.load(labels_file, allow_pickle=False)
    if labels is not None and (labels.ndim != 1 or len(labels) != len(images)):
        raise AlexnetDeployError(
            f"labels for {path} have shape {list(labels.shape)}, expected [{len(images)}]"
        )
    calib_n, eval_n = _sizes(len(images), calib_size, eval_size, str(path), holdout, cap)
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
        mean = np.asarray(pre.mean, dtype=np.float32).reshape(1, -1, 1, 1)
        std = np.asarray(pre.std, dtype=np.float32).reshape(1, -1, 1, 1)
        pixels = (pixels - mean) / std
    pixels = pixels.astype(np.float32)

    def split(lo: int, hi: int) -> Split:
        return Split(pixels[lo:hi], [f"synthetic[{i}]" for i in range(lo, hi)], [""] * (hi - lo))

    return CalibrationData(
        kind=C.SYNTHETIC,
        source=f"{C.SYNTHETIC} (seed {seed})",
        seed=seed,
        calib=split(0, calib_n),
        eval=split(calib_n, calib_n + eval_n),
    )


def shipped_images() -> Path:
    """The sample photographs bundled with the package (see data/images/SOURCES.md)."""
    return Path(__file__).resolve().parents[1] / "data" / "images"


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
):
    if data == C.SYNTHETIC:
        return synthetic(
            image_shape, preprocessing, calib_size=calib_size, eval_size=eval_size, seed=seed
        )
    path = shipped_images() if data == "shipped" else Path(data)
    if not path.exists():
        raise AlexnetDeployError(
            f"calibration data {path} not found",
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
        if preprocessing is None:
            raise AlexnetDeployError(
                "the model has no alexnet-deploy metadata, so its image preprocessing is unknown",
                hint="pass --input-size, --resize-size, --mean and --std, or a preprocessed .npy",
            )
        if preprocessing.crop_size != image_shape[1]:
            raise AlexnetDeployError(
                f"preprocessing crops {preprocessing.crop_size} px but the model takes {image_shape[1]} px"
            )
        return from_folder(path, preprocessing, **common)
    if path.suffix.lower() in (".npy", ".npz"):
        return from_array(path, image_shape, **common)
    raise AlexnetDeployError(
        f"calibration data {path} is neither a folder nor a .npy/.npz file",
        hint="pass a folder of JPEG/PNG images or a preprocessed .npy/.npz array",
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
) -> CalibrationData:
    """Dispatch on ``data``: 'synthetic', 'shipped', a folder, or a .npy/.npz file. With
    ``eval_data``, ``data`` only calibrates and the held-out set is read from ``eval_data``."""
    common = dict(image_shape=image_shape, preprocessing=preprocessing, seed=seed)
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
        calib_size=eval_size,
        eval_size=None,
        labels_file=labels_file,
        holdout=False,
        cap=C.MAX_EVAL_SIZE,
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
) -> CalibrationData:
    """Every sample of ``data`` (up to ``count``, default MAX_EVAL_SIZE) as the held-out set,
    decoded once: for work that needs no calibration (FP16 fidelity, bench's fidelity inputs)."""
    loaded = _load_source(
        data,
        image_shape=image_shape,
        preprocessing=preprocessing,
        calib_size=count,
        eval_size=None,
        seed=seed,
        labels_file=labels_file,
        holdout=False,
        cap=C.MAX_EVAL_SIZE,
    )
    empty = Split(np.zeros((0, *image_shape), np.float32), [], [])
    loaded.eval, loaded.calib = loaded.calib, empty
    return loaded
