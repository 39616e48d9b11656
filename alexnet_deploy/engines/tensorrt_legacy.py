"""LEGACY, TensorRT 10 only: implicit INT8 with the deprecated BuilderFlag.INT8 and a
calibrator that replays the calibration cache written by 'alexnet-deploy calibrate'. TensorRT
11 removed both; the Q/DQ artifact is the supported route."""

from __future__ import annotations

from pathlib import Path

from alexnet_deploy.errors import AlexnetDeployError


def cache_for(artifact: Path) -> Path:
    """The cache 'calibrate' wrote beside the FP32 model: STEM.int8.trt-calibration.cache."""
    from alexnet_deploy.artifacts import ArtifactSet, stem_of

    return ArtifactSet(artifact.with_name(f"{stem_of(artifact)}.onnx")).trt_cache()


def legacy_int8_config(trt, config, artifact: Path) -> None:
    cache = cache_for(Path(artifact))
    if not cache.is_file():
        raise AlexnetDeployError(
            f"--legacy-int8 needs {cache}", hint="run 'alexnet-deploy calibrate' first"
        )
    data = cache.read_bytes()

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
