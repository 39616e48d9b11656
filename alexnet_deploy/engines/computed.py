"""What an engine computed in, read back from its runtime, never assumed from what was asked.

A row's precision is what the artifact and the request say (an FP32 model, say); what the
runtime computed in can differ: OpenVINO left to its defaults computes an FP32 model in bf16 on a
CPU with BF16; ONNX Runtime's CPU provider runs an FP16 file in FP32 on x86 (it casts the weights
to float32 once and runs its float kernels). Each runner reads it back while active:

* OpenVINO: the compiled model's execution graph, each weighted layer's ``runtimePrecision`` and
  ``primitiveType`` (which names AMX kernels: ``brgconv_avx512_amx_bf16``), and its
  ``INFERENCE_PRECISION_HINT``;
* ONNX Runtime: its providers (``get_providers()``) and, on the CPU, the graph it runs (the
  optimized model it saved: the element types its Conv/Gemm kernels take, or its quantized
  kernels); with a GPU provider, the artifact's precision, as the provider is given it;
* PyTorch: the dtype of the module's weights, which its input is cast to.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

# runtimes' names of element types -> the tool's precisions
PRECISION_NAMES = {
    "f32": "fp32", "float32": "fp32", "fp32": "fp32",
    "bf16": "bf16", "bfloat16": "bf16",
    "f16": "fp16", "float16": "fp16", "fp16": "fp16",
    "u8": "int8", "i8": "int8", "int8": "int8", "uint8": "int8",
}  # fmt: skip
# OpenVINO's execution-graph layer types that carry the network's multiply-accumulates
OPENVINO_WEIGHTED = ("Convolution", "GroupConvolution", "Deconvolution", "FullyConnected", "MatMul")
# ONNX Runtime's kernels (its optimized graph's op types): quantized ones, and float ones whose
# weight type says the precision they run in
ORT_QUANTIZED = (
    "QLinearConv", "QGemm", "QLinearMatMul", "MatMulInteger", "ConvInteger",
    "MatMulIntegerToFloat", "DynamicQuantizeMatMul",
)  # fmt: skip
ORT_FLOAT = ("Conv", "FusedConv", "NhwcConv", "ConvTranspose", "Gemm", "FusedGemm", "MatMul")
ONNX_TYPES = {1: "fp32", 10: "fp16", 16: "bf16"}


@dataclass(frozen=True)
class Computed:
    """What a runtime reports it computed in: ``precision`` (fp32, fp16, bf16, int8; several
    joined by '+', the most layers first, where layers differ), whether AMX tiles ran (None:
    the runtime does not say), and where it was read."""

    precision: str
    amx: bool | None = None
    source: str = ""


def _joined(counts: Counter) -> str:
    return "+".join(name for name, _ in counts.most_common())


def openvino_computed(compiled) -> Computed:
    """From an OpenVINO compiled model: its weighted layers' runtime precisions and kernels."""
    hint = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()
    counts: Counter = Counter()
    amx = False
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if "layerType" not in info or info["layerType"].astype(str) not in OPENVINO_WEIGHTED:
            continue
        runtime = info["runtimePrecision"].astype(str).lower()
        counts[PRECISION_NAMES.get(runtime, runtime)] += 1
        amx |= "amx" in info["primitiveType"].astype(str).lower()
    if not counts:
        return Computed(
            PRECISION_NAMES.get(hint, hint), None, f"OpenVINO INFERENCE_PRECISION_HINT {hint}"
        )
    layers = sum(counts.values())
    return Computed(
        _joined(counts),
        amx,
        f"OpenVINO execution graph: runtimePrecision of {layers} weighted layers (hint {hint})",
    )


def onnx_graph_computed(path: Path, providers: list[str]) -> Computed:
    """From the graph ONNX Runtime runs on the CPU (its saved optimized model): the quantized
    kernels, and the weight type of its float Conv/Gemm/MatMul kernels."""
    import onnx

    graph = onnx.load(str(path)).graph
    types = {i.name: i.data_type for i in graph.initializer}
    for value in (*graph.input, *graph.value_info, *graph.output):
        types.setdefault(value.name, value.type.tensor_type.elem_type)
    counts: Counter = Counter()
    for node in graph.node:
        if node.op_type in ORT_QUANTIZED:
            counts["int8"] += 1
        elif node.op_type in ORT_FLOAT and len(node.input) > 1:
            kind = types.get(node.input[1]) or types.get(node.input[0])
            counts[ONNX_TYPES.get(kind, "unknown")] += 1
    where = f"ONNX Runtime {', '.join(providers)}"
    if not counts:
        return Computed("unknown", None, f"{where}: no Conv/Gemm/MatMul kernel in its graph")
    return Computed(_joined(counts), None, f"{where}: the element types of its kernels")


def provider_computed(precision: str, providers: list[str]) -> Computed:
    """A GPU provider compiles the artifact as given: its precision, with the providers."""
    return Computed(precision, None, f"ONNX Runtime {', '.join(providers)}: the artifact's types")


def module_dtype(model, input_dtype):
    """The dtype a PyTorch module computes in: its weights' (its input is cast to them), or
    ``input_dtype`` for a module with no parameters (pooling and a reshape, say)."""
    first = next(model.parameters(), None)
    return input_dtype if first is None else first.dtype


def torch_computed(model, input_dtype=None) -> Computed:
    """From a PyTorch module: :func:`module_dtype` (the input float32 unless given)."""
    import torch

    dtype = module_dtype(model, None)
    what = "weights" if dtype is not None else "input (no weights)"
    dtype = dtype or input_dtype or torch.float32
    name = str(dtype).removeprefix("torch.")
    return Computed(PRECISION_NAMES.get(name, name), None, f"PyTorch module {what} {dtype}")
