"""What an INT8 Q/DQ model left in float, and why: read from the quantized graph itself, so
the report describes the file, whichever form (calib/placement.py) wrote it."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from alexnet_deploy.calib.placement import FUSES_WITH_ADD, WEIGHTED, GraphIndex

GATES = frozenset({"Sigmoid", "HardSigmoid"})
NVIDIA = "NVIDIA guidance"

# What a float node of each kind means, for the report (ops not named: not worth a line).
REASONS = {
    "LayerNormalization": f"LayerNorm kept float ({NVIDIA})",
    "Softmax": f"Softmax kept float ({NVIDIA})",
    "Erf": f"GELU (Erf form) kept float ({NVIDIA})",
    "Gelu": f"GELU kept float ({NVIDIA})",
    "HardSwish": "HardSwish computed in float",
    "Sigmoid": "gate activation computed in float",
    "HardSigmoid": "gate activation computed in float",
    "Concat": "Concat inputs left float (one scale for every input)",
    "GlobalAveragePool": "global pooling computed in float",
    "GlobalMaxPool": "global pooling computed in float",
    "ReduceMean": "mean (global pooling) computed in float",
}
QUANTIZED_AFTER = "; one Q/DQ after it, where a weighted layer reads it"
RESIDUAL_FUSED = "residual input of Add quantized, conv output left to fusion"
SE_GATE = "squeeze-excitation Mul kept float: the [0,1] gate scales the features in float"
ATTENTION = f"attention MatMul of two activations kept float with the Softmax ({NVIDIA})"
ADD_FLOAT = "Add kept float: no convolution to fuse it with"
WEIGHTED_FLOAT = "weighted layer left float (excluded from quantization)"


@dataclass(frozen=True)
class FloatTensor:
    """One tensor (or node) left in float in an INT8 model, and why."""

    tensor: str
    node: str
    op_type: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def float_tensors(model) -> list[FloatTensor]:
    """What an INT8 Q/DQ model left in float, one entry per notable node, with the reason:
    read from the graph itself, so it describes the file, whichever form wrote it."""
    g = GraphIndex(model)
    found = []
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear"):
            continue
        binary = node.op_type in ("Add", "Mul", "MatMul")
        data = [i for i in node.input[: 2 if binary else None] if g.is_activation(i)]
        if not data:
            continue
        floats = [i for i in data if not g.dequantized(i)]
        if not floats:
            continue
        reason = _reason(g, node, data, floats)
        if reason:
            found.append(FloatTensor(floats[0], node.name, node.op_type, reason))
    return found


def _reason(g: GraphIndex, node, data: list[str], floats: list[str]) -> str | None:
    op = node.op_type
    if op == "Add" and len(data) == 2:
        if (
            len(floats) == 1
            and (s := g.source(floats[0])) is not None
            and s.op_type in FUSES_WITH_ADD
        ):
            return RESIDUAL_FUSED
        return ADD_FLOAT if len(floats) == 2 else None
    if op == "Mul" and len(data) == 2:
        if any((s := g.source(i)) is not None and s.op_type in GATES for i in data):
            return SE_GATE
        return None
    if op == "MatMul" and len(data) == 2:
        return ATTENTION
    if op in WEIGHTED:
        return WEIGHTED_FLOAT
    quantized_after = any(
        c.op_type == "QuantizeLinear" for c in g.consumers.get(node.output[0], [])
    )
    if op == "Concat" and (len(floats) < len(data) or not quantized_after):
        return None  # partly quantized, or a float Concat (a class token): nothing to say
    text = REASONS.get(op)
    kept = NVIDIA in (text or "")
    return text + QUANTIZED_AFTER if text and quantized_after and not kept else text
