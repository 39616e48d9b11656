"""Which tensors of a candidate (FP16 or INT8 artifact) are which layers of the reference (the
FP32 export), and copies of both models that output them.

A layer is the output of a node whose operator computes (Conv, Gemm, Relu, LRN, pooling, ...).
Conversions keep those tensor names: the FP16 converter inserts Cast nodes around the graph,
the Q/DQ quantizer inserts QuantizeLinear/DequantizeLinear pairs that read the layer's tensor
and write new names; ONNX Runtime's quantizer also folds a Relu into the quantized layer before
it (the Conv then writes the Relu's tensor: the pre-activation tensor no longer exists). So a
reference layer's counterpart is the candidate's tensor of the same name; a layer whose
activation was folded into it has none and is listed as folded. Two files of different networks
are refused, naming the first layer that differs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from alexnet_deploy.errors import UsageError

LAYER_OPS = frozenset(
    {
        "Conv", "Gemm", "MatMul", "Relu", "LRN", "MaxPool", "AveragePool",
        "GlobalAveragePool", "Flatten", "Softmax", "Add", "Reshape",
    }
)  # fmt: skip
ACTIVATIONS = frozenset({"Relu", "Clip"})
# what the INT8 recipes fold into the Conv before them (calib/placement.fold_batchnorm: the
# Conv then writes the BatchNormalization's tensor; ONNX Runtime's quantizer: the activation's)
FOLDED_OPS = ACTIVATIONS | {"BatchNormalization"}
# what a conversion may put where a layer's tensor was: the graph's output, renamed onto the
# dequantized or cast copy of the layer's result (the same value, in the candidate's precision)
INSERTED_OPS = frozenset({"DequantizeLinear", "QuantizeLinear", "Cast"})


@dataclass(frozen=True)
class Layer:
    name: str  # the tensor both models compute
    op: str
    node: str  # the reference node's name
    block: str = ""  # the module block it belongs to (node_block), "" where the names say none


@dataclass
class Quantizer:
    """The activation quantizer a candidate applies to a layer's tensor: the float range it can
    represent, and the tensor holding the dequantized value (what the next layers read, so the
    layer's value in the candidate: quantization error included)."""

    low: float
    high: float
    dequantized: str | None = None
    quantized: str | None = None  # the QuantizeLinear's output: the integers
    scale: float = 1.0
    zero_point: float = 0.0

    def dequantize(self, integers: np.ndarray) -> np.ndarray:
        """The float value of the quantized ``integers`` (what DequantizeLinear computes)."""
        return (integers.astype(np.float32) - np.float32(self.zero_point)) * np.float32(self.scale)


@dataclass
class LayerMap:
    layers: list[Layer]
    folded: list[Layer] = field(default_factory=list)  # no counterpart: activation folded in
    quantizers: dict[str, Quantizer] = field(default_factory=dict)  # by tensor name
    dtypes: dict[str, int] = field(default_factory=dict)  # candidate tensor -> ONNX elem type

    def candidate_value(self, name: str) -> str:
        """The candidate's tensor that holds layer ``name``'s value: the dequantized copy where
        the layer is quantized (for a folded activation, the quantizer's clamp is the
        activation), else the tensor itself."""
        quantizer = self.quantizers.get(name)
        return quantizer.dequantized if quantizer and quantizer.dequantized else name


# where PyTorch's exporter (torch.export-based) records a node's module path:
# ['', 'layer1', 'layer1.0', 'layer1.0.conv1', 'conv2d_1'] (the last entry names the op)
NAME_SCOPES_KEY = "pkg.torch.onnx.name_scopes"


def _module_path(node) -> str:
    """The dotted path of the PyTorch module a node came from, as far as the graph says: the
    torch.export exporter's name scopes, else the TorchScript exporter's node name
    (``/layer1/layer1.0/conv1/Conv`` -> ``layer1.0.conv1``); "" where neither is there."""
    import ast

    for prop in node.metadata_props:
        if prop.key == NAME_SCOPES_KEY:
            try:
                scopes = [s for s in ast.literal_eval(prop.value) if isinstance(s, str) and s]
            except (ValueError, SyntaxError):
                break
            return scopes[-2] if len(scopes) >= 2 else ""
    if not node.name.startswith("/"):
        return ""
    path = ""
    for part in node.name.strip("/").split("/")[:-1]:  # the last part names the op
        path = part if not path or part.startswith(path + ".") else f"{path}.{part}"
    return path


# operators a module's forward computes itself (``out + identity``), not through a child
# module: their module path is the block they are in, not a leaf module inside one
INLINE_OPS = frozenset({"Add", "Mul", "Concat", "Reshape", "Flatten"})


def node_block(node) -> str:
    """The block a layer belongs to, from its module path: the path up to its first numbered
    part below the top (``layer1.0.conv1`` -> ``layer1.0``, ``blocks.3.attn.qkv`` ->
    ``blocks.3``), else the module holding the layer's own (``features.0`` -> ``features``),
    else the top-level module itself (``fc``); "" where the graph names no modules."""
    path = _module_path(node)
    parts = path.split(".") if path else []
    if node.op_type in INLINE_OPS:
        parts.append(node.op_type)  # computed inside the module: the module is not a leaf
    for k, part in enumerate(parts[1:-1], start=1):
        if part.isdigit():
            return ".".join(parts[: k + 1])
    return ".".join(parts[:-1]) or ".".join(parts)


def _layers(model) -> list[Layer]:
    """The model's layers whose tensors are values, not shapes: a Reshape or Add of int64
    shape arithmetic (a ViT's attention reshapes) is not a layer to compare."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    types = {
        v.name: v.type.tensor_type.elem_type
        for v in [*inferred.graph.value_info, *inferred.graph.output]
    }
    floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.BFLOAT16}
    return [
        Layer(node.output[0], node.op_type, node.name or node.output[0], node_block(node))
        for node in model.graph.node
        if node.op_type in LAYER_OPS
        and node.output
        and types.get(node.output[0], onnx.TensorProto.FLOAT) in floats
    ]


def _initializer(model, name: str) -> np.ndarray | None:
    from onnx import numpy_helper

    for init in model.graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    return None


def _quantizers(model) -> dict[str, Quantizer]:
    """Per tensor that a QuantizeLinear reads (with constant scale and zero point): the float
    range it can represent. Values beyond it saturate."""
    found = {}
    dequantizer = {
        node.input[0]: node.output[0]
        for node in model.graph.node
        if node.op_type == "DequantizeLinear"
    }
    for node in model.graph.node:
        if node.op_type != "QuantizeLinear" or len(node.input) < 2:
            continue
        scale = _initializer(model, node.input[1])
        zero = _initializer(model, node.input[2]) if len(node.input) > 2 else None
        if scale is None or scale.size != 1:
            continue
        dtype = zero.dtype if zero is not None else np.dtype(np.uint8)
        info = np.iinfo(dtype)
        z = float(zero.reshape(-1)[0]) if zero is not None else 0.0
        s = float(scale.reshape(-1)[0])
        found[node.input[0]] = Quantizer(
            (info.min - z) * s, (info.max - z) * s, dequantizer.get(node.output[0]),
            node.output[0], s, z,
        )  # fmt: skip
    return found


def folded_chain(tensor: str, consumers: dict[str, list]) -> list[str]:
    """The tensors a conversion may fold ``tensor``'s layer into: each next one written by the
    only node reading the last, while that node is a BatchNormalization or an activation
    (Conv -> BatchNormalization -> Relu: the BatchNorm's tensor, then the Relu's)."""
    chain = []
    readers = consumers.get(tensor, [])
    while len(readers) == 1 and readers[0].op_type in FOLDED_OPS:
        chain.append(readers[0].output[0])
        readers = consumers.get(chain[-1], [])
    return chain


def map_layers(reference, candidate, reference_path: Path, candidate_path: Path) -> LayerMap:
    """The reference's layers that the candidate computes under the same name. Refuses two
    different networks: other inputs, or the first reference layer whose operator has no
    counterpart of that operator in the candidate."""
    import onnx

    ref_in, cand_in = reference.graph.input[0], candidate.graph.input[0]

    def dims(value) -> list:
        return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]

    if dims(ref_in)[1:] != dims(cand_in)[1:]:
        raise UsageError(
            f"{candidate_path} is not a version of {reference_path}: its input "
            f"{cand_in.name!r} is {dims(cand_in)}, the reference's {ref_in.name!r} is {dims(ref_in)}",
            hint="compare an artifact with the FP32 model it was made from",
        )
    produced = {out: node.op_type for node in candidate.graph.node for out in node.output}
    ref_producer = {out: node for node in reference.graph.node for out in node.output}
    consumers: dict[str, list] = {}
    for node in reference.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    kept, folded = [], []
    for layer in _layers(reference):
        found = produced.get(layer.name)
        if found == layer.op or found in INSERTED_OPS:
            kept.append(layer)
            continue
        if found is None:
            # folded: a BatchNormalization or activation after it is now written by its operator
            if any(produced.get(t) == layer.op for t in folded_chain(layer.name, consumers)):
                folded.append(layer)
                continue
        elif layer.op in ACTIVATIONS:
            source = ref_producer.get(ref_producer[layer.name].input[0])
            while source is not None and source.op_type in FOLDED_OPS:
                source = ref_producer.get(source.input[0])  # through a folded BatchNorm
            if source is not None and source.op_type == found:
                kept.append(layer)  # the activation's tensor, written by the folded layer
                continue
        raise UsageError(
            f"{candidate_path} is not a version of {reference_path}: the reference's layer "
            f"{layer.node!r} ({layer.op}, tensor {layer.name!r}) "
            + (f"is computed by {found} there" if found else "has no counterpart there"),
            hint="compare an artifact with the FP32 model it was made from",
        )
    quantizers = _quantizers(candidate)
    if cand_in.name == ref_in.name and cand_in.name in quantizers:
        # the network's input is quantized too: its row is where unrepresentative calibration
        # images show first (bright pixels beyond the range they gave)
        kept.insert(0, Layer(ref_in.name, "input", ref_in.name))
    inferred = onnx.shape_inference.infer_shapes(candidate)
    dtypes = {
        v.name: v.type.tensor_type.elem_type
        for v in [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]
    }
    return LayerMap(kept, folded, quantizers, dtypes)


@dataclass(frozen=True)
class Source:
    """Where a layer's candidate value is read: ``tensor``, dequantized with ``quantizer``
    where it holds the quantized integers; ``pre``: the float tensor the layer's quantizer
    reads (for the clip rate), None where the executed graph has no such tensor."""

    tensor: str
    quantizer: Quantizer | None = None
    pre: str | None = None


def layer_sources(
    mapping: LayerMap, names: list[str], executed=None
) -> tuple[dict[str, Source], list[str]]:
    """Each layer's :class:`Source` in the candidate as written, or (``executed``) in the graph
    a runtime optimized from it, where fused kernels leave only some tensors: a layer's value
    is read from its dequantized copy, else from its quantized integers, else the layer was
    fused away (returned second: no tensor of its own is computed as executed)."""
    if executed is None:
        return {n: Source(mapping.candidate_value(n), pre=n) for n in names}, []
    present = {out for node in executed.graph.node for out in node.output}
    present |= {value.name for value in executed.graph.input}
    found, fused = {}, []
    for name in names:
        quantizer = mapping.quantizers.get(name)
        pre = name if name in present else None
        if mapping.candidate_value(name) in present:
            found[name] = Source(mapping.candidate_value(name), pre=pre)
        elif quantizer is not None and quantizer.quantized in present:
            found[name] = Source(quantizer.quantized, quantizer, pre)
        else:
            fused.append(name)
    return found, fused


def with_outputs(model, names: list[str], dtypes: dict[str, int]):
    """A copy of ``model`` that also outputs ``names`` (intermediate tensors)."""
    import copy

    from onnx import TensorProto, helper

    out = copy.deepcopy(model)
    present = {o.name for o in out.graph.output}
    for name in names:
        if name not in present:
            out.graph.output.append(
                helper.make_tensor_value_info(name, dtypes.get(name, TensorProto.FLOAT), None)
            )
    return out
