"""Does an INT8 Q/DQ model have the one form TensorRT's ONNX parser accepts?

Every QuantizeLinear/DequantizeLinear zero point is 0 and INT8 (no UINT8), no INT32 (bias)
DequantizeLinear, opset >= 13, and every DequantizeLinear of an activation feeds an op that
TensorRT fuses with Q/DQ. The first violation raises an error naming the node.
"""

from __future__ import annotations

import numpy as np

from alexnet_deploy.errors import AlexnetDeployError

# Ops a DequantizeLinear may feed in a TensorRT explicit-quantization graph (NVIDIA's
# "Q/DQ layer-placement recommendations": weighted ops, pooling, element-wise, shape ops).
TRT_QDQ_CONSUMERS = frozenset(
    {
        "Conv",
        "ConvTranspose",
        "Gemm",
        "MatMul",
        "MaxPool",
        "AveragePool",
        "GlobalAveragePool",
        "Add",
        "Concat",
        "Relu",
        "Reshape",
        "Flatten",
        "Transpose",
        "Identity",
        "Clip",
    }
)
MIN_QDQ_OPSET = 13


class TensorRTCompatibilityError(AlexnetDeployError):
    """An INT8 artifact that TensorRT's parser would reject."""


def check_tensorrt_qdq(model) -> int:
    """Raise :class:`TensorRTCompatibilityError` at the first violation; return the number of
    Q/DQ nodes checked (0 means the model is not quantized at all, also an error)."""
    from onnx import TensorProto, numpy_helper

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < MIN_QDQ_OPSET:
        raise TensorRTCompatibilityError(
            f"opset {opset} < {MIN_QDQ_OPSET}: per-channel Q/DQ needs 13"
        )
    inits = {i.name: i for i in model.graph.initializer}
    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    checked = 0
    for node in model.graph.node:
        if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        checked += 1
        where = f"{node.op_type} node {node.name!r}"
        if len(node.input) < 3 or node.input[2] not in inits:
            raise TensorRTCompatibilityError(
                f"{where} has no constant zero point",
                hint="TensorRT needs symmetric INT8 with explicit zero points of 0",
            )
        zero_point = inits[node.input[2]]
        if zero_point.data_type == TensorProto.UINT8:
            raise TensorRTCompatibilityError(
                f"{where} uses UINT8; TensorRT takes INT8 only",
                hint="use the 'tensorrt' target's artifact",
            )
        if zero_point.data_type == TensorProto.INT32:
            raise TensorRTCompatibilityError(
                f"{where} dequantizes INT32 (a quantized bias); TensorRT's DequantizeLinear takes INT8",
                hint="quantize with biases left in float",
            )
        if zero_point.data_type != TensorProto.INT8:
            raise TensorRTCompatibilityError(
                f"{where} has zero-point type {TensorProto.DataType.Name(zero_point.data_type)}, expected INT8"
            )
        if np.any(numpy_helper.to_array(zero_point) != 0):
            raise TensorRTCompatibilityError(
                f"{where} has a non-zero zero point; TensorRT needs symmetric quantization"
            )
        if node.op_type == "DequantizeLinear" and node.input[0] not in inits:
            for consumer in consumers.get(node.output[0], []):
                if consumer.op_type not in TRT_QDQ_CONSUMERS:
                    raise TensorRTCompatibilityError(
                        f"{where} feeds {consumer.op_type} node {consumer.name!r}, where TensorRT does not fuse Q/DQ"
                    )
    if checked == 0:
        raise TensorRTCompatibilityError(
            "the model has no QuantizeLinear/DequantizeLinear nodes: it is not an INT8 Q/DQ model"
        )
    return checked
