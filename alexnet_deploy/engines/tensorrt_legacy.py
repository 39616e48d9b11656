"""LEGACY, TensorRT 10 only: implicit INT8 with the deprecated BuilderFlag.INT8 and a
calibrator that replays the calibration cache written by 'alexnet-deploy calibrate'. TensorRT
11 removed both; the Q/DQ artifact is the supported route."""

from __future__ import annotations

from pathlib import Path

from alexnet_deploy.errors import AlexnetDeployError


def cache_for(artifact: Path) -> Path:
    """The cache 'calibrate' wrote beside the FP32 model: STEM.int8.trt-calibration.cache, else
    the newest named after a 'calibrate -o' output beside it (r18.trt.trt-calibration.cache)."""
    from alexnet_deploy.artifacts import ArtifactSet

    siblings = ArtifactSet.of(artifact)
    return next(iter(siblings.trt_caches()), siblings.trt_cache())


def legacy_int8_config(trt, config, artifact: Path) -> None:
    """INT8 flags and a calibrator replaying the cache for ``artifact`` (the FP32 model): the
    cache must have been calibrated on this model, and TensorRT gets it under its own version's
    header (it skips a cache of an incompatible version, then fails for want of scales)."""
    from alexnet_deploy.calib.trt_cache import check_cache_source, with_header
    from alexnet_deploy.fileio import sha256_file

    cache = cache_for(Path(artifact))
    if not cache.is_file():
        raise AlexnetDeployError(
            f"--legacy-int8 needs {cache}", hint="run 'alexnet-deploy calibrate' first"
        )
    check_cache_source(cache, sha256_file(artifact))
    data = with_header(cache.read_text(), trt.__version__).encode()

    class CacheCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)

        def get_batch_size(self) -> int:
            return 1

        def get_batch(self, names):
            return None  # everything comes from the cache

        def read_calibration_cache(self):
            return data

        def write_calibration_cache(self, cache) -> None:
            pass

    config.set_flag(trt.BuilderFlag.INT8)
    config.set_flag(trt.BuilderFlag.FP16)
    config.int8_calibrator = CacheCalibrator()
