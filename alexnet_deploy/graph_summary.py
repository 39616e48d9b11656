"""The per-layer table of any ONNX model, read from its graph: output shape, parameters and
multiply-accumulates per node, at a batch of one.

Shapes come from ONNX shape inference on a copy whose batch axis is fixed to 1 (with data
propagation, so a Reshape whose target is computed from Shape nodes, as in a transformer, still
gets its shape); a graph that fixes a larger batch keeps it, and its Gemm and MatMul counts are
divided by it (a convolution's count is per image whatever the batch). Parameters are the
floating-point initializers a node consumes (a scalar, such as attention's 1/sqrt(d) or an
epsilon, is a constant, not a parameter); a quantized weight (an initializer behind
DequantizeLinear, and any Q/DQ/Cast chain in front of it, or the int8 weight of an integer
layer: ConvInteger, QLinearConv, MatMulInteger, QLinearMatMul, which get rows of their own) is
counted once, at the layer that uses it, and its scales and zero points are not parameters.
MACs are counted for Conv (groups and depthwise through the weight's shape), ConvTranspose,
Gemm and MatMul (batched, with activations on both sides as in attention) and their integer
forms. Each layer carries two counts: ``macs``, every kernel tap (the usual count, the one the
PyTorch-side table of models/summary.py gives), and ``real_macs``, the taps that land on real
input (zero padding excluded): the work a direct convolution cannot skip, which bench's roofline
and the planner's cost model use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from alexnet_deploy.errors import AlexnetDeployError

if TYPE_CHECKING:
    import polars as pl

# Nodes that get no row: they only move a weight or a tensor between precisions.
_NO_ROW = ("Constant", "QuantizeLinear", "DequantizeLinear")
# Nodes a weight passes through on its way from an initializer to the layer that uses it.
_WEIGHT_PATH = ("DequantizeLinear", "QuantizeLinear", "Cast", "Identity")
# Floating-point ONNX element types (FLOAT, FLOAT16, DOUBLE, BFLOAT16): parameters; int64
# shape operands are not.
_FLOAT_TYPES = (1, 10, 11, 16)
# Initializers up to this many elements keep their values for shape inference (shape operands
# of Reshape, Slice, ...: their values decide shapes); larger ones are weights.
_SHAPE_OPERAND = 1024
# op -> (index of the data input, index of the weight input)
_CONV_INPUTS = {"Conv": (0, 1), "ConvInteger": (0, 1), "QLinearConv": (0, 3)}
_MATMUL_INPUTS = {"MatMul": (0, 1), "MatMulInteger": (0, 1), "QLinearMatMul": (0, 3)}
# The integer layers (int32 or int8 out, so a row of their own although their output is not a
# float): the inputs that hold parameters (the int8 weight, QLinearConv's int32 bias); their
# scales and zero points are not parameters.
_INTEGER_PARAMS = {
    "ConvInteger": (1,), "QLinearConv": (3, 8), "MatMulInteger": (0, 1), "QLinearMatMul": (0, 3),
}  # fmt: skip


@dataclass(frozen=True)
class GraphLayer:
    """One node's row: its name (its first output's where it has none), operator, output shape
    at batch 1 without the batch axis (``?`` for a dimension inference could not fix),
    parameters, and multiply-accumulates (``macs``: every tap; ``real_macs``: padding skipped)."""

    name: str
    op_type: str
    output: str
    params: int
    macs: int
    real_macs: int


def graph_layers(model_path: str | Path) -> list[GraphLayer]:
    """The model's rows in graph order (see the module's docstring)."""
    from alexnet_deploy.onnx_model import load_model_proto

    return layers_of_proto(load_model_proto(model_path), Path(model_path))


def layers_of_proto(model, where: Path | str = "model") -> list[GraphLayer]:
    inferred = _inferred(model, where).graph
    values = [*inferred.input, *inferred.value_info, *inferred.output]
    graph = model.graph
    shapes = {
        v.name: tuple(d.dim_value if d.HasField("dim_value") else None for d in _dims(v))
        for v in values
    }
    elem_types = {v.name: v.type.tensor_type.elem_type for v in values}
    consts = {i.name: (tuple(i.dims), i.data_type) for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            tensor = node.attribute[0].t
            consts[node.output[0]] = (tuple(tensor.dims), tensor.data_type)
    shapes.update({name: dims for name, (dims, _) in consts.items()})
    elem_types.update({name: kind for name, (_, kind) in consts.items()})
    producers = {out: node for node in graph.node for out in node.output}
    batch = _image_batch(graph)
    counted: set[str] = set()
    rows = []
    for node in graph.node:
        kind = elem_types.get(node.output[0])  # 0 or None: not inferred (a custom operator)
        integer = node.op_type in _INTEGER_PARAMS
        if node.op_type in _NO_ROW or (kind and kind not in _FLOAT_TYPES and not integer):
            continue
        params = 0
        for index, name in enumerate(node.input):
            source = _weight_source(name, consts, producers)
            if source is None or source in counted:
                continue
            dims, dtype = consts[source]
            weight = index in _INTEGER_PARAMS[node.op_type] if integer else dtype in _FLOAT_TYPES
            if dims and (weight or source != name):  # behind Q/DQ: integer
                counted.add(source)
                params += math.prod(dims)
        macs, real = _macs(node, shapes, batch)
        out = shapes.get(node.output[0])
        rows.append(
            GraphLayer(
                name=node.name or node.output[0],
                op_type=node.op_type,
                output="x".join("?" if d is None else str(d) for d in (out or ())[1:]),
                params=params,
                macs=macs,
                real_macs=real,
            )
        )
    return rows


def layer_frame(layers: list[GraphLayer]) -> pl.DataFrame:
    """The rows as the summary table (layer, type, output, params, macs) with its totals row."""
    from alexnet_deploy.models.summary import summary_frame

    return summary_frame(
        [
            {
                "layer": x.name,
                "type": x.op_type,
                "output": x.output,
                "params": x.params,
                "macs": x.macs,
            }
            for x in layers
        ]
    )


def _dims(value):
    return value.type.tensor_type.shape.dim


def _inferred(model, where):
    """A light copy of ``model`` with every tensor's shape inferred at batch 1: each graph
    input's batch axis fixed to 1, the file's own intermediate shapes dropped (they name the
    batch), and every initializer larger than a shape operand declared as an input of its
    type and shape instead (inference needs no weights: no copy of a 244 MB model)."""
    import onnx
    from onnx import helper

    graph = model.graph
    initializers = {i.name for i in graph.initializer}
    inputs = []
    for value in graph.input:
        if value.name in initializers:
            continue
        fixed = onnx.ValueInfoProto()
        fixed.CopyFrom(value)
        dims = _dims(fixed)
        if len(dims) and not dims[0].HasField("dim_value"):
            dims[0].dim_value = 1
        inputs.append(fixed)
    small = [i for i in graph.initializer if math.prod(i.dims) <= _SHAPE_OPERAND]
    inputs += [
        helper.make_tensor_value_info(i.name, i.data_type, list(i.dims))
        for i in graph.initializer
        if math.prod(i.dims) > _SHAPE_OPERAND
    ]
    outputs = [
        helper.make_tensor_value_info(v.name, v.type.tensor_type.elem_type, None)
        for v in graph.output
    ]
    copy = helper.make_model(
        helper.make_graph(graph.node, graph.name, inputs, outputs, small),
        opset_imports=model.opset_import,
        ir_version=model.ir_version,
    )
    copy.functions.extend(model.functions)
    try:
        return onnx.shape_inference.infer_shapes(copy, data_prop=True)
    except Exception as err:  # onnx raises InferenceError, ValidationError, ...
        raise AlexnetDeployError(
            f"{where}: ONNX shape inference failed ({type(err).__name__}: {err})",
            hint="check the model with onnx.checker.check_model; an operator of a custom "
            "domain has no shapes to infer",
        ) from None


def _image_batch(graph) -> int:
    """The image input's batch in the graph shapes are inferred at: 1 where it is dynamic
    (inference fixes it to 1), the graph's own where it fixes one."""
    weights = {i.name for i in graph.initializer}
    value = next((v for v in graph.input if v.name not in weights), None)
    dims = _dims(value) if value is not None else ()
    return dims[0].dim_value if len(dims) and dims[0].dim_value > 0 else 1


def _weight_source(name: str, consts: dict, producers: dict) -> str | None:
    """The initializer (or Constant) behind input ``name``: itself, or the one a chain of
    Q/DQ/Cast nodes starts from; None for an activation."""
    for _ in range(4):  # Q -> DQ -> Cast at most, in practice
        if name in consts:
            return name
        node = producers.get(name)
        if node is None or node.op_type not in _WEIGHT_PATH:
            return None
        name = node.input[0]
    return None


def _macs(node, shapes: dict, batch: int) -> tuple[int, int]:
    """(every tap, taps on real input) of one image; (0, 0) where a shape is unknown. A
    convolution's count is per image already; a Gemm's or MatMul's rows hold ``batch`` images
    (the batch a graph fixes, which inference keeps; 1 otherwise), so theirs is divided by it."""
    op = node.op_type
    try:
        if op in _CONV_INPUTS:
            x, w = (shapes[node.input[i]] for i in _CONV_INPUTS[op])
            return _conv_macs(node, x, w, shapes[node.output[0]])
        if op == "ConvTranspose":
            x, w = shapes[node.input[0]], shapes[node.input[1]]
            macs = w[0] * math.prod(w[1:]) * math.prod(x[2:])  # each input pixel scatters
            return macs, macs
        if op == "Gemm":
            macs = _gemm_macs(node, shapes[node.input[0]], shapes[node.input[1]]) // batch
            return macs, macs
        if op in _MATMUL_INPUTS:
            a, b = (shapes[node.input[i]] for i in _MATMUL_INPUTS[op])
            macs = _matmul_macs(a, b) // batch
            return macs, macs
    except (KeyError, TypeError, ValueError, IndexError):  # an unknown shape or dimension
        return 0, 0
    return 0, 0


def _conv_macs(node, x: tuple, w: tuple, y: tuple) -> tuple[int, int]:
    cout, cin_per_group, kernel = w[0], w[1], w[2:]
    attrs = {a.name: a for a in node.attribute}
    axes = len(kernel)
    strides = list(attrs["strides"].ints) if "strides" in attrs else [1] * axes
    dilations = list(attrs["dilations"].ints) if "dilations" in attrs else [1] * axes
    pads = list(attrs["pads"].ints) if "pads" in attrs else [0] * (2 * axes)
    auto_pad = attrs["auto_pad"].s.decode() if "auto_pad" in attrs else "NOTSET"
    dense = cout * cin_per_group * math.prod(kernel) * math.prod(y[2:])
    taps = 1
    for i in range(axes):
        size, out, k, stride, dil = x[2 + i], y[2 + i], kernel[i], strides[i], dilations[i]
        begin = pads[i]
        if auto_pad.startswith("SAME"):
            total = max(0, (out - 1) * stride + (k - 1) * dil + 1 - size)
            begin = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
        taps *= _taps(size, out, k, stride, begin, dil)
    return dense, cout * cin_per_group * taps


def _taps(size: int, out: int, kernel: int, stride: int, pad: int, dilation: int) -> int:
    """Kernel taps that land inside the input, summed over the output positions of one axis:
    what a convolution that skips its zero padding multiplies (oneDNN's brgconv does)."""
    return sum(
        1 for o in range(out) for k in range(kernel) if 0 <= o * stride - pad + k * dilation < size
    )


def _gemm_macs(node, a: tuple, b: tuple) -> int:
    attrs = {x.name: x.i for x in node.attribute}
    rows, inner = (a[1], a[0]) if attrs.get("transA") else (a[0], a[1])
    cols = b[0] if attrs.get("transB") else b[1]
    return rows * inner * cols


def _matmul_macs(a: tuple, b: tuple) -> int:
    """numpy.matmul's rules: a 1-D operand is a row (left) or a column (right); the leading
    axes broadcast, and each of their positions is one M x K by K x N product."""
    a = (1, *a) if len(a) == 1 else a
    b = (*b, 1) if len(b) == 1 else b
    lead_a, lead_b = a[:-2], b[:-2]
    width = max(len(lead_a), len(lead_b))
    lead_a = (1,) * (width - len(lead_a)) + tuple(lead_a)
    lead_b = (1,) * (width - len(lead_b)) + tuple(lead_b)
    batch = math.prod(max(p, q) for p, q in zip(lead_a, lead_b, strict=True))
    return batch * a[-2] * a[-1] * b[-1]
