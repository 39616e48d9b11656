"""Where Q/DQ goes in the patterns real networks have, and which tensors stay float, and why.

The TensorRT form follows NVIDIA's "Q/DQ Layer-Placement Recommendations" (TensorRT Developer
Guide, "Working with Quantized Types"): quantize the inputs of weighted layers, not their
outputs; quantize the residual (identity) input of an Add so TensorRT fuses the other input,
the convolution's output, into the convolution (the ResNet case of NVIDIA's
pytorch-quantization ``residual_quantizer`` and TensorFlow toolkit ``ResNetV1QDQCase``);
normalization, Softmax and GELU stay in float, as TensorRT Model Optimizer's ONNX INT8 mode
leaves them (docs/calibration.md, "Q/DQ placement"). Three steps, each on an ONNX graph:

* :func:`fold_batchnorm`: BatchNormalization after a Conv folded into the Conv's weights
  before quantization (the PyTorch exporter already folds it; other exporters may not).
* :func:`float_nodes`: the nodes the quantizer must leave in float (transformer parts).
* :func:`place_residual_qdq`: the TensorRT form's residual-Add post-pass, and
  :func:`unfused_by_tensorrt` + :func:`keep_inputs_float`: no DQ into an op TensorRT fuses
  none with (the squeeze-excitation gate, HardSwish), so the form stays one TensorRT parses.

What stayed float, and why, is read back from the quantized graph by calib/float_report.py.
"""

from __future__ import annotations

import numpy as np

# Weighted ops: their inputs carry Q/DQ; TensorRT fuses a following Add into a Conv.
WEIGHTED = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})
FUSES_WITH_ADD = frozenset({"Conv", "ConvTranspose"})


class GraphIndex:
    """Producers, consumers and constants of an ONNX graph, read once."""

    def __init__(self, model) -> None:
        self.graph = model.graph
        self.inits = {i.name: i for i in self.graph.initializer}
        self.producer = {o: n for n in self.graph.node for o in n.output}
        self.consumers: dict[str, list] = {}
        for node in self.graph.node:
            for name in node.input:
                self.consumers.setdefault(name, []).append(node)

    def constant(self, name: str) -> np.ndarray | None:
        """The value of an initializer, a Constant node's output or an Identity of either."""
        from onnx import numpy_helper

        if name in self.inits:
            return numpy_helper.to_array(self.inits[name])
        node = self.producer.get(name)
        if node is None:
            return None
        if node.op_type == "Identity":
            return self.constant(node.input[0])
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            return numpy_helper.to_array(node.attribute[0].t)
        return None

    def is_constant(self, name: str) -> bool:
        """Whether ``name`` is an initializer, a Constant's output or an Identity of either
        (without reading its value)."""
        if name in self.inits:
            return True
        node = self.producer.get(name)
        if node is not None and node.op_type == "Identity":
            return self.is_constant(node.input[0])
        return node is not None and node.op_type == "Constant"

    def is_activation(self, name: str) -> bool:
        return bool(name) and not self.is_constant(name)

    def dequantized(self, name: str) -> bool:
        node = self.producer.get(name)
        return node is not None and node.op_type == "DequantizeLinear"

    def source(self, name: str):
        """The node computing ``name`` in float, looking through a Q -> DQ pair."""
        node = self.producer.get(name)
        if node is not None and node.op_type == "DequantizeLinear":
            quant = self.producer.get(node.input[0])
            if quant is not None and quant.op_type == "QuantizeLinear":
                return self.producer.get(quant.input[0])
        return node

    def depth(self) -> dict[str, int]:
        """Longest path (in nodes) from a graph input to each tensor; ONNX orders nodes
        topologically, so one pass suffices."""
        depth: dict[str, int] = {}
        for node in self.graph.node:
            level = 1 + max((depth.get(i, 0) for i in node.input), default=0)
            for out in node.output:
                depth[out] = level
        return depth


def fold_batchnorm(model) -> list[str]:
    """Fold each BatchNormalization that alone reads a Conv's output (constant weights,
    scale, bias, mean, variance) into that Conv, in place; the Conv takes over the BN's
    output name, so calibrated ranges still apply. Returns the folded BN nodes' names."""
    from onnx import numpy_helper

    g = GraphIndex(model)
    folded = []
    for bn in list(model.graph.node):
        if bn.op_type != "BatchNormalization" or len(bn.output) != 1:
            continue
        conv = g.producer.get(bn.input[0])
        if (
            conv is None
            or conv.op_type != "Conv"
            or len(g.consumers.get(conv.output[0], [])) != 1
            or conv.output[0] in {o.name for o in model.graph.output}
        ):
            continue
        params = [g.constant(name) for name in bn.input[1:5]]
        weight = g.constant(conv.input[1])
        bias_name = conv.input[2] if len(conv.input) > 2 else ""
        bias = g.constant(bias_name) if bias_name else None
        if weight is None or any(p is None for p in params) or (bias_name and bias is None):
            continue
        eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
        gamma, beta, mean, var = (p.astype(np.float64) for p in params)
        factor = gamma / np.sqrt(var + eps)
        shape = (-1,) + (1,) * (weight.ndim - 1)
        new_weight = (weight * factor.reshape(shape)).astype(weight.dtype)
        old_bias = np.zeros_like(mean) if bias is None else bias.astype(np.float64)
        new_bias = ((old_bias - mean) * factor + beta).astype(weight.dtype)
        w_name, b_name = (
            f"{conv.name or conv.output[0]}_folded_w",
            f"{conv.name or conv.output[0]}_folded_b",
        )
        model.graph.initializer.extend(
            [numpy_helper.from_array(new_weight, w_name), numpy_helper.from_array(new_bias, b_name)]
        )
        conv.input[:] = [conv.input[0], w_name, b_name]
        conv.output[0] = bn.output[0]
        model.graph.node.remove(bn)
        folded.append(bn.name)
    if folded:
        _drop_unused(model)
        model.graph.ClearField("value_info")  # shapes of removed tensors; re-inferred later
    return folded


def _drop_unused(model) -> None:
    """Remove nodes and initializers no longer read by anything (after a rewrite); an
    initializer also listed as a graph input (older exporters) stays."""
    outputs = {o.name for o in model.graph.output}
    changed = True
    while changed:
        used = {i for n in model.graph.node for i in n.input} | outputs
        dead = [n for n in model.graph.node if not any(o in used for o in n.output)]
        changed = bool(dead)
        for node in dead:
            model.graph.node.remove(node)
    used = {i for n in model.graph.node for i in n.input} | {i.name for i in model.graph.input}
    for init in [i for i in model.graph.initializer if i.name not in used]:
        model.graph.initializer.remove(init)


def _gelu_nodes(g: GraphIndex) -> set[str]:
    """The nodes of GELU's exact form, x * 0.5 * (1 + erf(x / sqrt(2))): each Erf, the
    Div (or Mul) feeding it and the chain of single-consumer Add/Mul nodes after it."""
    names: set[str] = set()
    for erf in (n for n in g.graph.node if n.op_type == "Erf"):
        names.add(erf.name)
        before = g.producer.get(erf.input[0])
        if before is not None and before.op_type in ("Div", "Mul"):
            names.add(before.name)
        node = erf
        for _ in range(3):
            after = g.consumers.get(node.output[0], [])
            if len(after) != 1 or after[0].op_type not in ("Add", "Mul"):
                break
            node = after[0]
            names.add(node.name)
    return names


def _attention_scores(g: GraphIndex, softmax) -> list[str]:
    """The element-wise nodes between an attention's score MatMul and its Softmax (the
    1/sqrt(d) scale, a mask): Mul, Div, Add or Where, walked back one producer at a time."""
    names = []
    node = g.producer.get(softmax.input[0])
    while node is not None and node.op_type in ("Mul", "Div", "Add", "Where"):
        names.append(node.name)
        activations = [i for i in node.input if g.is_activation(i)]
        node = g.producer.get(activations[0]) if len(activations) == 1 else None
    return names


def float_nodes(model) -> tuple[str, ...]:
    """Nodes the quantizer leaves in float in every form: LayerNormalization, GELU (the Gelu
    op or its Erf form), and attention: MatMuls of two activations, the Softmax between them
    and the scale or mask in front of the Softmax. None of them occurs in a plain CNN, so a
    CNN's forms do not change."""
    g = GraphIndex(model)
    gelu = _gelu_nodes(g)
    names = [n.name for n in model.graph.node if n.name in gelu]
    for node in model.graph.node:
        attention = node.op_type == "MatMul" and all(g.is_activation(i) for i in node.input)
        softmax_attention = node.op_type == "Softmax" and any(
            c.op_type == "MatMul" for c in g.consumers.get(node.output[0], [])
        )
        if node.op_type in ("LayerNormalization", "Gelu") or attention or softmax_attention:
            names.append(node.name)
        if softmax_attention:
            names.extend(_attention_scores(g, node))
    return tuple(n for n in names if n)


def _fusion_input(g: GraphIndex, add, depth: dict[str, int]) -> int | None:
    """Which input of a two-activation Add TensorRT fuses into its convolution: the output
    of a Conv, the deeper one when both are (the main path; the other is the identity or its
    downsampling conv). None: no conv feeds the Add."""
    if len(add.input) != 2 or not all(g.is_activation(i) for i in add.input):
        return None
    convs = [
        k
        for k, name in enumerate(add.input)
        if (s := g.source(name)) is not None and s.op_type in FUSES_WITH_ADD
    ]
    if not convs:
        return None
    return max(convs, key=lambda k: depth.get(_float_name(g, add.input[k]), 0))


def _float_name(g: GraphIndex, name: str) -> str:
    """The float tensor behind a DQ output (the Q's input), else ``name``."""
    node = g.producer.get(name)
    if node is not None and node.op_type == "DequantizeLinear":
        quant = g.producer.get(node.input[0])
        if quant is not None and quant.op_type == "QuantizeLinear":
            return quant.input[0]
    return name


def unfused_by_tensorrt(model) -> tuple[str, ...]:
    """Nodes TensorRT fuses no Q/DQ into (HardSwish, Sigmoid, Mul, LayerNormalization, ...,
    anything outside ``TRT_QDQ_CONSUMERS``): ONNX Runtime quantizes a weighted layer's output
    for every reader, and these read it in float instead. ReLU, pooling, Add and the weighted
    layers keep theirs, which leaves a plain CNN's form (AlexNet's) as it was."""
    from alexnet_deploy.calib.tensorrt_check import TRT_QDQ_CONSUMERS

    fused = TRT_QDQ_CONSUMERS | {"QuantizeLinear", "DequantizeLinear"}
    return tuple(n.name for n in model.graph.node if n.op_type not in fused and n.name)


def keep_inputs_float(model, names: tuple[str, ...]) -> list[str]:
    """Let the named nodes read float tensors, in place: an input the quantizer gave them
    through a DQ shared with another reader (``nodes_to_exclude`` keeps a node's own Q/DQ
    out, not its neighbours') is read from the tensor in front of the Q instead. Returns the
    nodes changed."""
    g = GraphIndex(model)
    wanted = set(names)
    changed = []
    for node in model.graph.node:
        if node.name not in wanted:
            continue
        inputs = [_float_name(g, i) for i in node.input]
        if inputs != list(node.input):
            node.input[:] = inputs
            changed.append(node.name)
    if changed:
        _drop_unused(model)
    return changed


def place_residual_qdq(model, ranges: dict[str, tuple[float, float]]) -> list[str]:
    """TensorRT's residual placement, in place: in every Add of a conv's output and another
    activation, the conv's output is read in float (fusion) and the other input through a
    symmetric INT8 Q/DQ pair made from its calibrated range. Returns the Adds changed."""
    from onnx import TensorProto, helper

    g = GraphIndex(model)
    depth = g.depth()
    changed = []
    new_nodes: dict[int, list] = {}  # id of an Add -> the Q/DQ nodes to put before it
    made: dict[str, str] = {}  # tensor -> its residual DQ output (one pair per tensor)
    for add in model.graph.node:
        if add.op_type != "Add":
            continue
        fuse = _fusion_input(g, add, depth)
        if fuse is None:
            continue
        other = 1 - fuse
        add.input[fuse] = _float_name(g, add.input[fuse])
        if add.input[other] in made:
            add.input[other] = made[add.input[other]]
        elif not g.dequantized(add.input[other]):
            tensor = add.input[other]
            if tensor not in ranges:
                continue
            lo, hi = ranges[tensor]
            scale = max(abs(lo), abs(hi), 1e-12) / 127.0
            base = f"{tensor}_residual"
            model.graph.initializer.extend(
                [
                    helper.make_tensor(f"{base}_scale", TensorProto.FLOAT, [], [scale]),
                    helper.make_tensor(f"{base}_zero_point", TensorProto.INT8, [], [0]),
                ]
            )
            q = helper.make_node(
                "QuantizeLinear",
                [tensor, f"{base}_scale", f"{base}_zero_point"],
                [f"{base}_q"],
                name=f"{base}_QuantizeLinear",
            )
            dq = helper.make_node(
                "DequantizeLinear",
                [f"{base}_q", f"{base}_scale", f"{base}_zero_point"],
                [f"{base}_dq"],
                name=f"{base}_DequantizeLinear",
            )
            add.input[other] = made[tensor] = f"{base}_dq"
            new_nodes[id(add)] = [q, dq]
        changed.append(add.name)
    if new_nodes:
        ordered = []
        for node in model.graph.node:
            ordered.extend(new_nodes.get(id(node), []))
            ordered.append(node)
        model.graph.ClearField("node")
        model.graph.node.extend(ordered)
    _drop_unused(model)
    return changed
