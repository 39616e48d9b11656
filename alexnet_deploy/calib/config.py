"""Calibration settings as a validated dataclass with one named constructor per method."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from alexnet_deploy import constants as C
from alexnet_deploy.errors import UsageError

METHODS = ("minmax", "entropy", "percentile")


@dataclass(frozen=True)
class CalibrationConfig:
    method: str
    num_bins: int | None = None
    percentile: float | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise UsageError(
                f"unknown calibration method {self.method!r}",
                hint=f"choose one of: {', '.join(METHODS)} or auto",
            )
        if self.percentile is not None and not 90.0 < self.percentile <= 100.0:
            raise UsageError(f"percentile {self.percentile} must be in (90, 100]")
        if self.num_bins is not None and self.num_bins < 128:
            raise UsageError(f"num_bins {self.num_bins} must be at least 128")

    @classmethod
    def minmax(cls) -> CalibrationConfig:
        return cls("minmax")

    @classmethod
    def entropy(cls, num_bins: int = C.ENTROPY_NUM_BINS) -> CalibrationConfig:
        return cls("entropy", num_bins=num_bins)

    @classmethod
    def percentile_(cls, percentile: float = C.PERCENTILE, num_bins: int = C.PERCENTILE_NUM_BINS):
        return cls("percentile", num_bins=num_bins, percentile=percentile)

    @classmethod
    def named(cls, method: str) -> CalibrationConfig:
        """The default configuration of ``method``."""
        factories = {"minmax": cls.minmax, "entropy": cls.entropy, "percentile": cls.percentile_}
        if method not in factories:
            cls(method)  # raises the UsageError naming the choices
        return factories[method]()

    def calibrator_options(self) -> dict:
        """ONNX Runtime ``create_calibrator`` extra_options. Ranges are collected asymmetric;
        the TensorRT recipe makes them symmetric at quantization time, so one pass serves both."""
        options: dict = {"symmetric": False}
        if self.num_bins is not None:
            options["num_bins"] = self.num_bins
        if self.percentile is not None:
            options["percentile"] = self.percentile
        return options

    def as_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}
