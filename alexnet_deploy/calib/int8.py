"""Activation ranges -> INT8 Q/DQ ONNX models, one recipe per target.

* ``tensorrt``: the only form TensorRT's ONNX parser accepts for explicit quantization:
  symmetric INT8 activations and weights (every zero point 0), per-channel weights, biases
  left in float (the parser's DequantizeLinear takes INT8, not the INT32 of quantized biases),
  Q/DQ only in front of the ops TensorRT fuses with.
* ``cpu``: the form ONNX Runtime and OpenVINO run fastest on x86 with VNNI: asymmetric UINT8
  activations (ReLU outputs use all 256 levels), symmetric per-channel INT8 weights. The choice
  is measured, see docs/calibration.md.
"""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

from alexnet_deploy.calib.ranges import Ranges


@dataclass(frozen=True)
class Int8Recipe:
    target: str
    activation_type: str  # "QInt8" or "QUInt8"
    weight_type: str
    per_channel: bool
    reduce_range: bool
    activation_symmetric: bool
    weight_symmetric: bool
    quantize_bias: bool
    op_types: tuple[str, ...] | None  # None: every op ONNX Runtime's QDQ quantizer supports
    extra: dict = field(default_factory=dict)

    def describe(self) -> str:
        act = f"{'symmetric' if self.activation_symmetric else 'asymmetric'} {self.activation_type[1:].lower()} activations"
        wts = f"{'per-channel' if self.per_channel else 'per-tensor'} {'symmetric' if self.weight_symmetric else 'asymmetric'} {self.weight_type[1:].lower()} weights"
        bias = "INT32 biases" if self.quantize_bias else "float biases"
        return f"{act}, {wts}, {bias}"


RECIPES = {
    "tensorrt": Int8Recipe(
        target="tensorrt",
        activation_type="QInt8",
        weight_type="QInt8",
        per_channel=True,
        reduce_range=False,
        activation_symmetric=True,
        weight_symmetric=True,
        quantize_bias=False,
        op_types=("Conv", "Gemm", "MatMul"),
    ),
    "cpu": Int8Recipe(
        target="cpu",
        activation_type="QUInt8",
        weight_type="QInt8",
        per_channel=True,
        reduce_range=False,
        activation_symmetric=False,
        weight_symmetric=True,
        quantize_bias=True,
        op_types=None,
    ),
}
TARGETS = tuple(RECIPES)

# The CPU-form alternatives that were measured against each other (docs/calibration.md,
# scripts/int8-cpu-forms); RECIPES["cpu"] is the one that won.
CPU_FORM_CANDIDATES = {
    "u8 asym act, s8 sym per-channel": RECIPES["cpu"],
    "s8 sym act, s8 sym per-channel": replace(
        RECIPES["cpu"], activation_type="QInt8", activation_symmetric=True
    ),
    "u8 asym act, s8 per-channel, reduce-range": replace(RECIPES["cpu"], reduce_range=True),
    "u8 asym act, s8 sym per-tensor": replace(RECIPES["cpu"], per_channel=False),
}


def quantize_to_file(model_path: Path, ranges: Ranges, recipe: Int8Recipe, out: Path) -> Path:
    """Write the Q/DQ model for ``recipe`` from the cached ``ranges`` (no new calibration)."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import CalibrationMethod

    method = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[ranges.config.method]
    extra = {
        "ActivationSymmetric": recipe.activation_symmetric,
        "WeightSymmetric": recipe.weight_symmetric,
        "QuantizeBias": recipe.quantize_bias,
        **recipe.extra,
    }
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)  # the quantizer warns about pre-processing at WARNING
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            quantize_static(
                str(model_path),
                str(out),
                calibration_data_reader=None,
                calibration_cache_path=str(ranges.path),
                calibrate_method=method,
                quant_format=QuantFormat.QDQ,
                activation_type=getattr(QuantType, recipe.activation_type),
                weight_type=getattr(QuantType, recipe.weight_type),
                per_channel=recipe.per_channel,
                reduce_range=recipe.reduce_range,
                op_types_to_quantize=list(recipe.op_types) if recipe.op_types else None,
                extra_options=extra,
            )
    finally:
        logger.setLevel(level)
    return out
