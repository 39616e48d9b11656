"""Activation ranges -> INT8 Q/DQ ONNX models, one recipe per target.

* ``tensorrt``: the only form TensorRT's ONNX parser accepts for explicit quantization:
  symmetric INT8 activations and weights (every zero point 0), per-channel weights, biases
  left in float (the parser's DequantizeLinear takes INT8, not the INT32 of quantized biases),
  Q/DQ only in front of the ops TensorRT fuses with.
* ``cpu``: the form for this machine's instruction-set class (alexnet_deploy.cpu_isa);
  ``cpu-<class>`` asks for another class's. Every class gets asymmetric UINT8 activations
  (ReLU outputs use all 256 levels) and symmetric per-channel INT8 weights, the form ONNX
  Runtime and OpenVINO ran fastest and most faithfully on VNNI (docs/calibration.md). Classes
  whose u8 x s8 kernels saturate 16-bit sums (x86 without VNNI) and the portable form add
  reduce-range (7-bit weights), as ONNX Runtime's quantization guide prescribes for them.

The file of every CPU class is ``STEM.int8-cpu.onnx``; its metadata records the class
(``int8_isa``), so a consumer on another class can say what that costs.
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
    isa: str | None = None  # the CPU class a CPU form is for (None: not a CPU form)
    # TensorRT's placement (calib/placement.py): Q/DQ on an Add's identity input only, and no
    # DQ into an op TensorRT fuses none with (HardSwish, Sigmoid, Mul, ...)
    residual_fusion: bool = False

    def describe(self) -> str:
        act = f"{'symmetric' if self.activation_symmetric else 'asymmetric'} {self.activation_type[1:].lower()} activations"
        wts = f"{'per-channel' if self.per_channel else 'per-tensor'} {'symmetric' if self.weight_symmetric else 'asymmetric'} {self.weight_type[1:].lower()} weights"
        bias = "INT32 biases" if self.quantize_bias else "float biases"
        text = f"{act}, {wts}, {bias}"
        if self.reduce_range:
            text += ", reduce-range (7-bit weights)"
        return text + (f"; for {self.isa} CPUs" if self.isa else "")


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
        residual_fusion=True,
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
        isa="vnni",
    ),
}

# The CPU form per instruction-set class: no saturation (VNNI, ARM dot products) keeps 8-bit
# weights; saturating u8 x s8 kernels (x86 AVX2/AVX-512 without VNNI) and the portable form
# take reduce-range, the fix ONNX Runtime's guide names for exactly those machines.
CPU_FORMS = {
    "vnni": RECIPES["cpu"],
    "arm64": replace(RECIPES["cpu"], isa="arm64"),
    "avx512": replace(RECIPES["cpu"], reduce_range=True, isa="avx512"),
    "avx2": replace(RECIPES["cpu"], reduce_range=True, isa="avx2"),
    "portable": replace(RECIPES["cpu"], reduce_range=True, isa="portable"),
}
TARGETS = tuple(RECIPES)  # what calibrate writes by default: one file per kind
KNOWN_TARGETS = (*TARGETS, *(f"cpu-{isa}" for isa in CPU_FORMS))

# The CPU-form alternatives that were measured against each other (docs/calibration.md,
# scripts/int8-cpu-forms); RECIPES["cpu"] is the one that won on VNNI.
CPU_FORM_CANDIDATES = {
    "u8 asym act, s8 sym per-channel": RECIPES["cpu"],
    "s8 sym act, s8 sym per-channel": replace(
        RECIPES["cpu"], activation_type="QInt8", activation_symmetric=True
    ),
    "u8 asym act, s8 per-channel, reduce-range": replace(RECIPES["cpu"], reduce_range=True),
    "u8 asym act, s8 sym per-tensor": replace(RECIPES["cpu"], per_channel=False),
}


def resolve_target(name: str, machine_isa: str) -> tuple[str, Int8Recipe]:
    """``(kind, recipe)`` for a ``--target``: kind is the file's form (``tensorrt`` or
    ``cpu``); ``cpu`` means this machine's class, ``cpu-<class>`` another one's."""
    from alexnet_deploy.errors import UsageError

    if name == "tensorrt":
        return "tensorrt", RECIPES["tensorrt"]
    isa = machine_isa if name == "cpu" else name.removeprefix("cpu-")
    if not name.startswith("cpu") or isa not in CPU_FORMS:
        raise UsageError(
            f"unknown --target {name!r}",
            hint=f"choose from: {', '.join(KNOWN_TARGETS)} (this machine: cpu = cpu-{machine_isa})",
        )
    return "cpu", CPU_FORMS[isa]


def artifact_isa(metadata: dict[str, str]) -> str | None:
    """The CPU class an INT8 artifact's CPU form was made for (None: not a CPU form). Files
    from before the class was recorded carry the VNNI form, the only CPU form then."""
    if metadata.get("precision") != "int8" or metadata.get("int8_target") != "cpu":
        return None
    if metadata.get("int8_quantizer", "qdq") != "qdq":
        return None  # another quantizer's form (NNCF's): not one of these recipes
    return metadata.get("int8_isa", "vnni")


def isa_mismatch(metadata: dict[str, str], machine_isa: str, model: str = "MODEL") -> str | None:
    """What running this INT8 CPU artifact on a ``machine_isa`` CPU costs, with the fix; None
    when its form is this class's (or it is not a CPU form)."""
    made_for = artifact_isa(metadata)
    if made_for is None or made_for not in CPU_FORMS:
        return None
    if CPU_FORMS[made_for].reduce_range == CPU_FORMS[machine_isa].reduce_range:
        return None
    fix = (
        f"recalibrate here: 'alexnet-deploy calibrate {model} --force' (this CPU's form, "
        f"--target cpu-{machine_isa})"
    )
    if CPU_FORMS[machine_isa].reduce_range:
        return (
            f"the INT8 CPU form was calibrated for {made_for} CPUs; this CPU ({machine_isa}) "
            "sums u8 x s8 products in saturating 16-bit integers, so its logits can differ from "
            f"what the file means (unfaithful): {fix}"
        )
    return (
        f"the INT8 CPU form was calibrated for {made_for} CPUs (7-bit weights against "
        f"saturation); this CPU ({machine_isa}) does not saturate and loses precision for "
        f"nothing: {fix}"
    )


def quantize_to_file(
    model_path: Path,
    ranges: Ranges,
    recipe: Int8Recipe,
    out: Path,
    nodes_to_exclude: tuple[str, ...] = (),
) -> Path:
    """Write the Q/DQ model for ``recipe`` from the cached ``ranges`` (no new calibration).
    ``nodes_to_exclude``: nodes left in float (no Q/DQ on their inputs), ONNX Runtime's own
    rule, which keeps an excluded layer's activation where the quantizer would fold it.
    Every form folds BatchNormalization into its Conv first and keeps the transformer parts
    in float; the TensorRT form then gets its residual placement (calib/placement.py)."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import CalibrationMethod

    from alexnet_deploy.calib.placement import (
        float_nodes,
        fold_batchnorm,
        keep_inputs_float,
        place_residual_qdq,
        unfused_by_tensorrt,
    )

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
    proto = onnx.load(str(model_path))
    folded = out.with_name(f"{out.stem}.bn-folded.onnx")  # beside ``out``: the caller's scratch
    source = model_path
    if fold_batchnorm(proto):
        onnx.save(proto, str(folded))
        source = folded
    kept_float = float_nodes(proto)
    nodes_to_exclude = (*nodes_to_exclude, *kept_float)
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)  # the quantizer warns about pre-processing at WARNING
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            quantize_static(
                str(source),
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
                nodes_to_exclude=list(nodes_to_exclude),
                extra_options=extra,
            )
    finally:
        logger.setLevel(level)
        folded.unlink(missing_ok=True)
    quantized = onnx.load(str(out))
    changed = keep_inputs_float(quantized, kept_float)
    if recipe.residual_fusion:
        changed += place_residual_qdq(quantized, _range_bounds(ranges))
        changed += keep_inputs_float(quantized, unfused_by_tensorrt(quantized))
    if changed:
        onnx.save(quantized, str(out))
    return out


def _range_bounds(ranges: Ranges) -> dict[str, tuple[float, float]]:
    """Each calibrated tensor's (min, max), from ONNX Runtime's range cache."""
    import numpy as np

    return {
        name: (float(np.min(data.range_value[0])), float(np.max(data.range_value[1])))
        for name, data in ranges.load().items()
    }
