"""Precision plans over a network's weight layers (Conv of any groups, Gemm, MatMul: AlexNet
has 8, ResNet-50 54): which run INT8 and which stay float, and the ONNX file of a plan.

A plan's file is the INT8 recipe's Q/DQ model with the float layers excluded by ONNX Runtime's
quantizer (``nodes_to_exclude``): no Q/DQ on their inputs, so every runtime (and TensorRT's
strongly typed networks) computes them in the precision the file says. ``keep="fp16"`` then
runs each float layer in FP16: its weights stored as FP16, a Cast to FP16 on its input and
back to float on its output. ``keep="bf16"`` leaves the float layers FP32 as written and says
in the file's metadata (``precision_plan_keep``) that they run bf16: OpenVINO's precision hint
is one setting for the whole model, so its engine of the file computes every float layer in
bf16 and every INT8 layer in INT8 (engines/openvino.py); ONNX Runtime's CPU provider has no
bf16 kernels and refuses such a file (engines/build.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from alexnet_deploy import constants as C
from alexnet_deploy.errors import UsageError

WEIGHT_OPS = ("Conv", "Gemm", "MatMul")
KEEP_PRECISIONS = ("fp32", "fp16", "bf16")


@dataclass(frozen=True)
class WeightLayer:
    name: str  # its output tensor in the FP32 export: the name `compare` shows
    node: str  # the node's name (what the quantizer's exclusion takes)
    op: str
    macs: int  # multiply-accumulates per image
    block: str = ""  # its module block (precision.layers.node_block): "" where names say none


@dataclass(frozen=True)
class Plan:
    """The layers kept in float; every other weight layer runs INT8."""

    float_layers: frozenset[str]  # WeightLayer.name

    def label(self, layers: list[WeightLayer]) -> str:
        """The plan in words, listing the fewer of its float and INT8 layers; past
        C.PLAN_LABEL_NAMES of them, their count, their blocks and a digest of the set (labels
        key the plans in reports: two plans never share one)."""
        if not self.float_layers:
            return "all-INT8"
        if len(self.float_layers) == len(layers):
            return "all-float"
        if 2 * len(self.float_layers) > len(layers):
            kind, names = "INT8 only", [x.name for x in layers if x.name not in self.float_layers]
        else:
            kind, names = "float", [x.name for x in layers if x.name in self.float_layers]
        if len(names) <= C.PLAN_LABEL_NAMES:
            return f"{kind}: " + ", ".join(names)
        digest = hashlib.sha256(",".join(sorted(self.float_layers)).encode()).hexdigest()[:6]
        listed = set(names)
        blocks = list(dict.fromkeys(x.block or x.name for x in layers if x.name in listed))
        shown = ", ".join(blocks[: C.PLAN_LABEL_NAMES])
        shown += ", ..." if len(blocks) > C.PLAN_LABEL_NAMES else ""
        return f"{kind}: {len(names)} layers in {len(blocks)} block(s) ({shown}) #{digest}"

    def precisions(self, layers: list[WeightLayer], keep: str) -> dict[str, str]:
        """Layer -> precision, in network order (what the metadata and sidecar record)."""
        return {x.name: keep if x.name in self.float_layers else "int8" for x in layers}

    def float_macs(self, layers: list[WeightLayer]) -> int:
        return sum(x.macs for x in layers if x.name in self.float_layers)


def weight_layers(model_path: Path) -> list[WeightLayer]:
    """The weight layers of an FP32 model, in network order, with their per-image MACs and
    module blocks: every Conv (depthwise and grouped included), Gemm and MatMul node (a
    transformer's projections and its attention products alike: the quantizer makes each
    INT8, so a plan decides each)."""
    import onnx

    from alexnet_deploy.bench.roofline import macs_by_node
    from alexnet_deploy.precision.layers import node_block

    macs = macs_by_node(model_path)
    graph = onnx.load(str(model_path), load_external_data=False).graph
    return [
        WeightLayer(
            n.output[0],
            n.name or n.output[0],
            n.op_type,
            macs.get(n.name or n.output[0], 0),
            node_block(n),
        )
        for n in graph.node
        if n.op_type in WEIGHT_OPS
    ]


def resolve_layers(names: tuple[str, ...], layers: list[WeightLayer], option: str) -> frozenset:
    """Layer names (their tensor or node names) -> tensor names; an unknown one is an error
    listing the real ones."""
    by_any = {x.name: x.name for x in layers} | {x.node: x.name for x in layers}
    unknown = [n for n in names if n not in by_any]
    if unknown:
        listed = ", ".join(x.name for x in layers[: C.TABLE_TOP_LAYERS])
        more = len(layers) - C.TABLE_TOP_LAYERS
        if more > 0:
            listed += f" and {more} more (every Conv, Gemm and MatMul node: its name or output)"
        raise UsageError(
            f"{option} {unknown[0]!r} is not a weight layer of this model",
            hint=f"its weight layers: {listed}",
        )
    return frozenset(by_any[n] for n in names)


def keep_in_fp16(model, nodes: set[str]) -> None:
    """Run ``nodes`` (float layers of a plan file) in FP16: weights stored as FP16, the input
    cast to FP16 and the output cast back to float, so the rest of the graph is unchanged."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    new_nodes = []
    for node in graph.node:
        if (node.name or node.output[0]) not in nodes:
            new_nodes.append(node)
            continue
        for k, name in enumerate(node.input):
            half = f"{name}.fp16"
            if name in inits:
                if half not in inits:
                    array = numpy_helper.to_array(inits[name]).astype(np.float16)
                    inits[half] = numpy_helper.from_array(array, half)
                    graph.initializer.append(inits[half])
            else:
                new_nodes.append(
                    helper.make_node("Cast", [name], [half], to=TensorProto.FLOAT16, name=half)
                )
            node.input[k] = half
        out = node.output[0]
        node.output[0] = f"{out}.fp16"
        new_nodes.append(node)
        new_nodes.append(
            helper.make_node(
                "Cast", [node.output[0]], [out], to=TensorProto.FLOAT, name=f"{out}.cast"
            )
        )
    del graph.node[:]
    graph.node.extend(new_nodes)
    used = {i for n in graph.node for i in n.input}
    kept = [i for i in graph.initializer if i.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)


def write_plan_file(
    source: Path,
    ranges,
    recipe,
    plan: Plan,
    layers: list[WeightLayer],
    keep: str,
    out: Path,
    metadata: dict[str, str],
) -> Path:
    """The Q/DQ file of ``plan`` with ``metadata`` and the plan's own (``source``: a link to the
    FP32 model in a scratch directory, where ONNX Runtime's quantizer writes its shape-inferred
    copy)."""
    import onnx

    from alexnet_deploy.calib.int8 import quantize_to_file
    from alexnet_deploy.calib.stage import write_artifact_metadata

    nodes = tuple(x.node for x in layers if x.name in plan.float_layers)
    quantize_to_file(source, ranges, recipe, out, nodes_to_exclude=nodes)
    model = onnx.load(str(out))
    if keep == "fp16" and nodes:
        keep_in_fp16(model, set(nodes))
    # what the file holds: a bf16 plan's float layers are FP32 as written (the hint runs them)
    precision = "int8" if len(nodes) < len(layers) else ("fp32" if keep == "bf16" else keep)
    write_artifact_metadata(
        model, {**metadata, "precision": precision, **plan_metadata(plan, layers, keep)}
    )
    onnx.save(model, str(out))
    return out


def plan_metadata(plan: Plan, layers: list[WeightLayer], keep: str) -> dict[str, str]:
    """What a plan file records (``precision_plan``: layer -> precision, in network order)."""
    from alexnet_deploy.calib.bf16 import PLAN_KEEP

    return {
        "precision_plan": json.dumps(plan.precisions(layers, keep)),
        "precision_plan_label": plan.label(layers),
        PLAN_KEEP: keep,
    }
