from __future__ import annotations

import numpy as np
import pytest
from onnxruntime.quantization.calibrate import CalibrationMethod, TensorData, TensorsData

from alexnet_deploy.calib.config import CalibrationConfig
from alexnet_deploy.calib.ranges import _collapsed
from alexnet_deploy.calib.trt_cache import cache_text, parse_cache
from alexnet_deploy.errors import UsageError


def _entropy_data(lowest: float, highest: float, extent: float) -> TensorsData:
    edges = np.linspace(-extent, extent, 9, dtype=np.float32)
    data = TensorData(
        lowest=np.float32(lowest), highest=np.float32(highest), hist=np.ones(8), bins=edges
    )
    return TensorsData(CalibrationMethod.Entropy, {"t": data})


def test_entropy_equal_to_minmax_is_detected():
    assert _collapsed(_entropy_data(-4.0, 4.0, 4.0))
    assert not _collapsed(_entropy_data(-1.5, 2.5, 4.0))


def test_minmax_ranges_are_never_reported_as_collapsed():
    data = TensorsData(CalibrationMethod.MinMax, {"t": (np.float32(0), np.float32(3))})
    assert not _collapsed(data)


def test_named_constructors_and_validation():
    assert CalibrationConfig.named("entropy").num_bins == 2048
    assert CalibrationConfig.named("percentile").percentile == 99.999
    assert CalibrationConfig.named("minmax").calibrator_options() == {"symmetric": False}
    with pytest.raises(UsageError, match="unknown calibration method 'kl'"):
        CalibrationConfig.named("kl")
    with pytest.raises(UsageError, match="percentile 50"):
        CalibrationConfig("percentile", percentile=50.0)


def test_trt_cache_scales_are_symmetric_int8():
    data = TensorsData(CalibrationMethod.MinMax, {"conv1": (np.float32(-2.54), np.float32(1.0))})
    scales = parse_cache(cache_text(data))
    assert scales["conv1"] == pytest.approx(2.54 / 127, rel=1e-6)
    with pytest.raises(ValueError, match="not a TensorRT calibration cache"):
        parse_cache("garbage\nx: 00")
