"""One calibration pass: activation ranges collected with ONNX Runtime's calibrators, cached.

The cache file is ONNX Runtime's own range format (``save_tensors_data``), named by everything
that determines its content: the model's sha256, the data's content key (files, order, labels,
preprocessing) and the sha256 of the very tensors calibrated on, the method settings, the batch
size, and the versions of ONNX Runtime and of this tool; a second run with the same inputs
reuses it and any change recomputes. Ranges that are not finite are never written, and a cached
file holding any is recomputed, not trusted.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alexnet_deploy.calib.config import CalibrationConfig
from alexnet_deploy.calib.samples import Split
from alexnet_deploy.errors import AlexnetDeployError


@dataclass
class Ranges:
    config: CalibrationConfig
    path: Path  # ONNX Runtime's range cache (JSON)
    seconds: float  # 0 when read from the cache
    cached: bool
    collapsed_to_minmax: bool  # histogram method picked the full data range for every tensor

    def load(self):
        from onnxruntime.quantization.calibrate import load_tensors_data

        return load_tensors_data(self.path)


class _Reader:
    """ONNX Runtime's CalibrationDataReader protocol over our batches."""

    def __init__(self, input_name: str, split: Split, batch_size: int) -> None:
        self._batches = [{input_name: b} for b in split.batches(batch_size)]
        self._index = 0

    def get_next(self):
        if self._index >= len(self._batches):
            return None
        self._index += 1
        return self._batches[self._index - 1]

    def __len__(self) -> int:
        return len(self._batches)

    def set_range(self, start_index: int, end_index: int) -> None:  # protocol, unused
        self._batches = self._batches[start_index:end_index]


def uniform_batch(count: int, batch_size: int) -> int:
    """The largest batch size up to ``batch_size`` that divides ``count`` samples evenly.
    ONNX Runtime's histogram calibrators (entropy, percentile) stack every batch's outputs into
    one array, which fails when the last batch is smaller; the ranges do not depend on how the
    samples are batched."""
    return next(b for b in range(min(batch_size, count), 0, -1) if count % b == 0)


def cache_file(
    cache_dir: Path,
    model_sha: str,
    data_key: str,
    config: CalibrationConfig,
    batch_size: int,
    images: np.ndarray,
) -> Path:
    import onnxruntime

    from alexnet_deploy import __version__

    key = json.dumps(
        {
            "model": model_sha,
            "data": data_key,
            "tensors": hashlib.sha256(np.ascontiguousarray(images).data).hexdigest(),
            "shape": list(images.shape),
            "config": config.as_dict(),
            "batch": batch_size,
            "onnxruntime": onnxruntime.__version__,
            "tool": __version__,
        },
        sort_keys=True,
    )
    return (
        cache_dir / f"ranges-{config.method}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"
    )


def _not_finite(tensors) -> list[str]:
    """The tensors whose range holds NaN or Inf."""
    return [
        name
        for name, data in tensors.items()
        if not all(np.isfinite(np.asarray(v, dtype=np.float64)).all() for v in data.range_value)
    ]


def _collapsed(tensors) -> bool:
    """True when every histogram-derived range equals the histogram's full extent (the
    pitfall where entropy/percentile silently give min/max ranges)."""
    checked = 0
    for data in tensors.values():
        bins = np.asarray(getattr(data, "bins", []))
        if bins.ndim != 1 or len(bins) < 2:  # percentile stores no edges here
            continue
        checked += 1
        lo, hi = (
            float(np.asarray(data.range_value[0]).min()),
            float(np.asarray(data.range_value[1]).max()),
        )
        extent = max(abs(float(bins[0])), abs(float(bins[-1])))
        if max(abs(lo), abs(hi)) < 0.999 * extent:
            return False
    return checked > 0


def collect_ranges(
    model_path: Path,
    model_sha: str,
    input_name: str,
    split: Split,
    data_key: str,
    config: CalibrationConfig,
    cache_dir: Path,
    batch_size: int,
) -> Ranges:
    from onnxruntime.quantization.calibrate import (
        CalibrationMethod,
        create_calibrator,
        load_tensors_data,
        save_tensors_data,
    )

    path = cache_file(cache_dir, model_sha, data_key, config, batch_size, split.images)
    if path.is_file():
        try:
            tensors = load_tensors_data(path)
            if _not_finite(tensors):
                raise ValueError("ranges of NaN or Inf")
            return Ranges(
                config, path, 0.0, True, config.method != "minmax" and _collapsed(tensors)
            )
        except Exception:  # a corrupt cache is recomputed, never trusted
            logging.getLogger(__name__).warning("recomputing unreadable range cache %s", path)
    if len(split) == 0:
        raise AlexnetDeployError(
            "no calibration samples", hint="calibrate on data that holds images"
        )
    method = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[config.method]
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="alexnet-calib-") as tmp:
        calibrator = create_calibrator(
            model_path,
            op_types_to_calibrate=None,
            augmented_model_path=str(Path(tmp) / "augmented.onnx"),
            calibrate_method=method,
            extra_options=config.calibrator_options(),
        )
        with contextlib.redirect_stdout(io.StringIO()):  # the calibrators print progress
            histogram = config.method != "minmax"
            size = uniform_batch(len(split), batch_size) if histogram else batch_size
            calibrator.collect_data(_Reader(input_name, split, size))
            tensors = calibrator.compute_data()
        del calibrator
    seconds = time.perf_counter() - start
    bad = _not_finite(tensors)
    if bad:  # never cached: every later run would reuse them
        raise AlexnetDeployError(
            f"{config.method} calibration gave ranges of NaN or Inf for {len(bad)} tensor(s) "
            f"(first: {bad[0]!r}): the model overflows, or its inputs are not finite",
            hint="check the preprocessing (--mean/--std) and the calibration data; nothing was cached",
        )
    from alexnet_deploy.fileio import atomic_path

    with atomic_path(path) as tmp:  # noted in the run's journal: an interrupt names it
        save_tensors_data(tensors, tmp)
    return Ranges(config, path, seconds, False, config.method != "minmax" and _collapsed(tensors))
