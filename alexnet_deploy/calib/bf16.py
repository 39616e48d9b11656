"""BF16: bfloat16's numerics, the BF16 artifact (for TensorRT) and its fidelity.

bfloat16 is float32 with the low 16 bits of the mantissa dropped: FP32's range (no overflow where
FP16 overflows), 8 bits of precision. Where it runs:

* on a CPU with native BF16 (AVX512_BF16, AMX-BF16, ARM BF16: ``cpu_isa``), from the FP32 model:
  OpenVINO told ``INFERENCE_PRECISION_HINT=bf16``, PyTorch with the model and input in
  ``torch.bfloat16`` (oneDNN's bf16 kernels); ONNX Runtime's CPU provider has no bfloat16
  Conv/Gemm kernels, so it is refused there. A CPU without native BF16 is refused too
  (``cpu_isa.require_native_bf16``): a runtime would convert every value to FP32 and back;
* on a GPU, the BF16 artifact ``STEM.bf16.onnx`` (this module): float32 inputs and outputs
  (Cast at the edges), weights and activations bfloat16, the ops of ``FP16_KEEP_FP32_OPS`` (LRN:
  a sum of squares) in FP32, built by TensorRT as a strongly typed network.

The artifact is made by the FP16 converter (the same Casts, kept ops and value types), then
retyped to bfloat16 with the weights rounded from the FP32 originals (``round_to_bf16``), never
from their FP16 copies. Its emulated fidelity runs the FP32 graph in ONNX Runtime with the
weights rounded and every activation the artifact holds in bfloat16 rounded where it is made (a
Cast to bfloat16 and back, which rounds to nearest even as ``round_to_bf16`` does: tested); its
fidelity as executed is OpenVINO's bf16 on this CPU (PyTorch's: bench's rows). Both are held to the
budget (``bf16`` command: fp16's sibling, calib/fp16.py's ``convert_half``). A plan file whose
float layers run bf16 (``plan --keep bf16``) is emulated the same way, its float layers alone
rounded (:func:`bf16_layer_emulation`); :func:`emulated_logits` is what any file means.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from alexnet_deploy import constants as C
from alexnet_deploy.calib.fp16 import HalfFloat, HalfFloatReport, convert_half, fp16_model
from alexnet_deploy.calib.stage import DataRequest

# ONNX allows bfloat16 in Conv and MaxPool from opset 22 (18 -> 22 changed types only): an
# older model is converted up first (onnx.version_converter), so the artifact is valid ONNX
BF16_OPSET = 22
FLOAT16, BFLOAT16 = 10, 16  # onnx.TensorProto's element types, without importing onnx here
# in the emulation graph, an activation before its rounding and as bfloat16
UNROUNDED, AS_BF16 = "/fp32", "/bf16"
# a plan file's metadata: what its float layers run in (fp32, fp16, or bf16 through OpenVINO's
# precision hint on the file as written)
PLAN_KEEP = "precision_plan_keep"


def round_to_bf16(values: np.ndarray) -> np.ndarray:
    """``values`` rounded to the nearest bfloat16, ties to even, as float32: what a runtime's
    float32 -> bfloat16 conversion gives (oneDNN's, ONNX Runtime's Cast). A value past
    bfloat16's largest finite one rounds to infinity, as the conversion does; NaN stays NaN."""
    x = np.ascontiguousarray(values, dtype=np.float32)
    bits = x.view(np.uint32).astype(np.uint64)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
    quiet_nan = ((bits >> 16) | 0x40) << 16  # the sign and payload's top bits, made quiet
    out = np.where(np.isnan(x), quiet_nan, rounded).astype(np.uint32)
    return out.view(np.float32).reshape(x.shape)


def bf16_bits(values: np.ndarray) -> np.ndarray:
    """The bfloat16 encoding (uint16) of ``values`` rounded by :func:`round_to_bf16`."""
    return (round_to_bf16(values).view(np.uint32) >> 16).astype(np.uint16)


def bf16_values(bits: np.ndarray) -> np.ndarray:
    """float32 values of bfloat16 encodings (exact: bfloat16 is float32's top half)."""
    return (np.asarray(bits, dtype=np.uint32) << 16).view(np.float32)


def _bf16_tensor(name: str, values: np.ndarray):
    from onnx import TensorProto, helper

    bits = bf16_bits(values)
    return helper.make_tensor(name, TensorProto.BFLOAT16, values.shape, bits.tobytes(), raw=True)


def _tensor_values(tensor) -> np.ndarray:
    """float32 values of a FLOAT or BFLOAT16 tensor proto."""
    from onnx import TensorProto, numpy_helper

    if tensor.data_type != TensorProto.BFLOAT16:
        return numpy_helper.to_array(tensor).astype(np.float32)
    if tensor.raw_data:
        bits = np.frombuffer(tensor.raw_data, dtype=np.uint16)
    else:
        bits = np.asarray(tensor.int32_data, dtype=np.uint16)  # one value per int32 entry
    return bf16_values(bits).reshape(tuple(tensor.dims))


def _retype(graph, old: int, new: int, casts: bool = True) -> None:
    """Every value (inputs, outputs, value_info), and with ``casts`` every Cast target, of
    type ``old`` -> ``new``."""
    for value in (*graph.input, *graph.output, *graph.value_info):
        if value.type.tensor_type.elem_type == old:
            value.type.tensor_type.elem_type = new
    for node in graph.node if casts else ():
        for attr in node.attribute:
            if node.op_type == "Cast" and attr.name == "to" and attr.i == old:
                attr.i = new


def bf16_model(model, keep_fp32_ops: tuple[str, ...] = C.FP16_KEEP_FP32_OPS):
    """A BF16 copy of ``model`` (an FP32 onnx.ModelProto; at opset BF16_OPSET or later): the
    FP16 converter's graph (float32 I/O, Casts, ``keep_fp32_ops`` in FP32) with every FLOAT16
    type made BFLOAT16 and every converted weight or constant rounded to bfloat16 from its FP32
    value."""
    import onnx
    from onnx import TensorProto

    graph = model.graph
    floats = [i for i in graph.initializer if i.data_type == TensorProto.FLOAT]
    originals = {i.name: _tensor_values(i) for i in floats}
    constants = {
        n.output[0]: _tensor_values(a.t)
        for n in graph.node
        if n.op_type == "Constant"
        for a in n.attribute
        if a.name == "value" and a.t.data_type == TensorProto.FLOAT
    }
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    opset = next((o.version for o in copy.opset_import if o.domain in ("", "ai.onnx")), 0)
    if opset < BF16_OPSET:
        copy = onnx.version_converter.convert_version(copy, BF16_OPSET)
    half = fp16_model(copy, keep_fp32_ops)
    for init in half.graph.initializer:
        if init.data_type == TensorProto.FLOAT16:
            init.CopyFrom(_bf16_tensor(init.name, originals[init.name]))
    for node in half.graph.node:
        for attr in node.attribute:
            if node.op_type == "Constant" and attr.name == "value" and attr.t.data_type == FLOAT16:
                attr.t.CopyFrom(_bf16_tensor(attr.t.name, constants[node.output[0]]))
    _retype(half.graph, TensorProto.FLOAT16, TensorProto.BFLOAT16)
    return half


def bf16_emulation(artifact):
    """The BF16 artifact (a ModelProto) as float32 compute that rounds where bfloat16 would:
    weights decoded to float32 (exact), every tensor the artifact holds in bfloat16 rounded
    where it is made (Cast to bfloat16 and back), every other type as it was."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inferred = onnx.shape_inference.infer_shapes(artifact)
    graph = inferred.graph
    held = {
        v.name
        for v in (*graph.value_info, *graph.output)
        if v.type.tensor_type.elem_type == TensorProto.BFLOAT16
    }
    model = onnx.ModelProto()
    model.CopyFrom(inferred)
    graph = model.graph
    for init in graph.initializer:
        if init.data_type == TensorProto.BFLOAT16:
            init.CopyFrom(numpy_helper.from_array(_tensor_values(init), init.name))
    for node in graph.node:
        for attr in node.attribute:
            if node.op_type == "Constant" and attr.name == "value" and attr.t.data_type == BFLOAT16:
                attr.t.CopyFrom(numpy_helper.from_array(_tensor_values(attr.t), attr.t.name))
    nodes = []
    for node in graph.node:
        if node.op_type == "Cast":
            for attr in node.attribute:
                if attr.name == "to" and attr.i == TensorProto.BFLOAT16:
                    attr.i = TensorProto.FLOAT
        nodes.append(node)
        for i, name in enumerate(node.output):
            if name in held:
                node.output[i] = name + UNROUNDED
                nodes += [
                    helper.make_node("Cast", [name + UNROUNDED], [name + AS_BF16], to=BFLOAT16),
                    helper.make_node("Cast", [name + AS_BF16], [name], to=TensorProto.FLOAT),
                ]
    del graph.node[:]
    graph.node.extend(nodes)
    _retype(graph, TensorProto.BFLOAT16, TensorProto.FLOAT, casts=False)  # not the roundings
    return model


def plan_bf16_layers(metadata: dict[str, str]) -> frozenset[str]:
    """The layers (their output tensors) a plan file runs in bf16: those its ``precision_plan``
    maps to bf16 where its float layers run bf16 (``plan --keep bf16``: OpenVINO's precision
    hint on the file, whose float layers are FP32 as written); empty for any other file."""
    import json

    if metadata.get(PLAN_KEEP) != "bf16":
        return frozenset()
    plan = json.loads(metadata.get("precision_plan", "{}"))
    return frozenset(name for name, precision in plan.items() if precision == "bf16")


def bf16_layer_emulation(model, layers: frozenset[str]):
    """``model`` (a plan file: Q/DQ, float layers FP32) with the weight layers writing
    ``layers`` computed as bf16 computes them, in float: the float initializers they read
    rounded to bfloat16, their activation inputs rounded where read and their outputs where
    made (a Cast to bfloat16 and back); every other node as written."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    inits = {i.name: i for i in graph.initializer}
    nodes, rounded = [], set()

    def rounding(source: str, target: str) -> list:
        return [
            helper.make_node("Cast", [source], [target + AS_BF16], to=BFLOAT16),
            helper.make_node("Cast", [target + AS_BF16], [target], to=TensorProto.FLOAT),
        ]

    for node in graph.node:
        if node.output[0] not in layers:
            nodes.append(node)
            continue
        for k, name in enumerate(node.input):
            held = inits.get(name)
            if held is not None and held.data_type == TensorProto.FLOAT:
                if name + AS_BF16 not in inits:  # a weight or bias: rounded once
                    values = round_to_bf16(numpy_helper.to_array(held))
                    inits[name + AS_BF16] = numpy_helper.from_array(values, name + AS_BF16)
                    graph.initializer.append(inits[name + AS_BF16])
                node.input[k] = name + AS_BF16
            elif name and held is None:  # an activation: rounded where this layer reads it
                if name not in rounded:
                    rounded.add(name)
                    nodes += rounding(name, name + "/read")
                node.input[k] = name + "/read"
        made = node.output[0]
        node.output[0] = made + UNROUNDED
        nodes += [node, *rounding(made + UNROUNDED, made)]
    del graph.node[:]
    graph.node.extend(nodes)
    return out


def bf16_emulated_logits(path: Path, input_name: str, images: np.ndarray, batch: int):
    """Logits of bf16 as emulated in float (ONNX Runtime, every optimization off): of the BF16
    artifact at ``path``, of a plan file's bf16 layers (:func:`plan_bf16_layers`), or, given
    the FP32 model, of its BF16 conversion."""
    import onnx

    from alexnet_deploy.calib.fidelity import ort_logits
    from alexnet_deploy.onnx_model import read_artifact

    model, info = onnx.load(str(path)), read_artifact(path)
    if info.precision == "bf16":
        emulation = bf16_emulation(model)
    elif plan_bf16_layers(info.metadata):
        emulation = bf16_layer_emulation(model, plan_bf16_layers(info.metadata))
    else:
        emulation = bf16_emulation(bf16_model(model))
    with tempfile.TemporaryDirectory(prefix="bf16-emulated-") as scratch:
        onnx.save(emulation, str(Path(scratch) / "emulated.onnx"))
        return ort_logits(Path(scratch) / "emulated.onnx", input_name, images, batch, emulated=True)


def emulated_logits(path: Path, input_name: str, images, batch: int, precision: str = ""):
    """What a file means, computed in float with every ONNX Runtime optimization off: bf16
    (``precision`` bf16: the BF16 artifact or the FP32 model run in bf16; or a plan whose
    float layers run bf16) rounded to bfloat16 where it would be (:func:`bf16_emulated_logits`);
    any other file as written (Q/DQ in float, FP16 storage)."""
    from alexnet_deploy.calib.fidelity import ort_logits
    from alexnet_deploy.onnx_model import read_artifact

    if precision == "bf16" or plan_bf16_layers(read_artifact(path).metadata):
        return bf16_emulated_logits(path, input_name, images, batch)
    return ort_logits(path, input_name, images, batch, emulated=True)


def bf16_executed(model_path: Path, candidate: Path, input_name, images, batch):
    """bf16 as this CPU executes it, from the FP32 model: OpenVINO with the bf16 hint (what
    ``build --backend openvino --precision bf16`` runs); a str saying why not where it cannot.
    PyTorch's bf16 is measured as executed by bench, row by row."""
    from alexnet_deploy.calib.fidelity import openvino_available, openvino_logits
    from alexnet_deploy.cpu_isa import this_cpu

    cpu = this_cpu()
    if not cpu.bf16_native:
        return f"this CPU (class {cpu.name}) has no native BF16: emulated only"
    if not openvino_available():
        return "OpenVINO is not installed ('bench --backend torch --precision bf16' measures torch)"
    return "openvino", openvino_logits(model_path, images, batch, precision="bf16")


BF16 = HalfFloat("bf16", bf16_model, bf16_executed, bf16_emulated_logits, ("executed", "emulated"))


def convert_bf16(model_path: Path, request: DataRequest, **options) -> HalfFloatReport:
    """Write the BF16 artifact and measure it against FP32 (``convert_half``'s options)."""
    return convert_half(model_path, request, BF16, **options)
