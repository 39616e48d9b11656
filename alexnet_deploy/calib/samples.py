"""Calibration and held-out samples: the two splits, their manifest and content key, and how
many samples each split takes."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np

from alexnet_deploy import constants as C
from alexnet_deploy.errors import AlexnetDeployError, UsageError


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
    # how the images became tensors (None: given preprocessed): part of the content key
    preprocessing: dict | None = None

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
            "preprocessing": self.preprocessing,
            "calibration": rows(self.calib),
            "held_out": rows(self.eval),
            "skipped": self.skipped,
        }

    def key(self) -> str:
        """Content hash of what was sampled (files, order, labels) and how it was preprocessed:
        the cache key's data part."""
        text = json.dumps({**self.manifest(), "source": None}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


def split_sizes(
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


def require_finite(images: np.ndarray, where: str, name_of, hint: str) -> None:
    """Refuse samples holding NaN or Inf (ONNX Runtime's calibrator fails on them with an
    internal assertion, or computes ranges of NaN), naming how many and the first
    (``name_of(index)``)."""
    bad = ~np.isfinite(images).all(axis=tuple(range(1, images.ndim)))  # no samples: none bad
    if bad.any():
        raise AlexnetDeployError(
            f"{where}: {int(bad.sum())} of {len(images)} samples hold NaN or Inf values "
            f"(first: {name_of(int(np.argmax(bad)))})",
            hint=hint,
        )


def stack(arrays: list[np.ndarray], size: int) -> np.ndarray:
    return np.stack(arrays) if arrays else np.zeros((0, 3, size, size), np.float32)
