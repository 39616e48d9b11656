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


# ONNX element types -> the TensorRT DataType member that holds them (engines/tensorrt.py binds
# each by name; tests/test_bf16.py checks every name against the real bindings of 10.x and 11.x)
TRT_DATA_TYPES = {
    1: "FLOAT", 10: "HALF", 16: "BF16", 2: "UINT8", 3: "INT8", 6: "INT32", 7: "INT64", 9: "BOOL",
}  # fmt: skip


def check_tensorrt_float_types(model) -> set[str]:
    """Check a 16-bit float artifact (FP16 or BF16) for a strongly typed TensorRT network: valid
    ONNX with every node's inputs of one type (the full checker: a strongly typed network
    converts nothing implicitly), float32 graph inputs and outputs, and only tensor types that
    TensorRT has. Returns the TensorRT DataType names its tensors need; raises
    :class:`TensorRTCompatibilityError` naming the first problem."""
    import onnx
    from onnx import TensorProto

    try:
        onnx.checker.check_model(model, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as err:
        raise TensorRTCompatibilityError(
            f"the model is not valid typed ONNX: {str(err).strip().splitlines()[0]}"
        ) from None
    graph = onnx.shape_inference.infer_shapes(model).graph
    for value in (*graph.input, *graph.output):
        if value.type.tensor_type.elem_type != TensorProto.FLOAT:
            raise TensorRTCompatibilityError(
                f"{value.name!r} is {TensorProto.DataType.Name(value.type.tensor_type.elem_type)}: "
                "the tool's engines take and give float32 (a Cast belongs inside the graph)"
            )
    types = {i.name: i.data_type for i in graph.initializer}
    types |= {v.name: v.type.tensor_type.elem_type for v in (*graph.value_info, *graph.output)}
    needed = set()
    for name, kind in types.items():
        if kind not in TRT_DATA_TYPES:
            raise TensorRTCompatibilityError(
                f"tensor {name!r} is {TensorProto.DataType.Name(kind)}, a type TensorRT has not"
            )
        needed.add(TRT_DATA_TYPES[kind])
    return needed
