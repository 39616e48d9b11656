"""Every backend by name, and the capability of each."""

from __future__ import annotations

from alexnet_deploy.engines.base import Backend, Capability
from alexnet_deploy.errors import UsageError


def _backends() -> dict[str, Backend]:
    from alexnet_deploy.engines.openvino import OpenVINOBackend
    from alexnet_deploy.engines.ort import CUDA, TENSORRT_EP, OrtBackend
    from alexnet_deploy.engines.tensorrt import TensorRTBackend
    from alexnet_deploy.engines.torch_backend import TorchBackend

    backends = [
        OrtBackend(),
        OrtBackend(CUDA),
        OrtBackend(TENSORRT_EP),
        OpenVINOBackend(),
        TorchBackend(),
        TensorRTBackend(),
    ]
    return {b.name: b for b in backends}


# The one registry of runtime names. Engines this tool builds (each a Backend below) ...
BACKEND_NAMES = ("ort", "ort-cuda", "ort-trt", "openvino", "torch", "tensorrt")
# ... the runtimes used directly with their own defaults (bench's peers: bench/direct.py) ...
DIRECT_BACKENDS = ("ort-direct", "openvino-direct")
# ... and a model served by Triton Inference Server (bench --triton: serve/triton_client.py).
SERVED = "triton"
BENCH_BACKENDS = (*BACKEND_NAMES, *DIRECT_BACKENDS)
# The engines that run on a GPU: bf16 there is the BF16 artifact, and the GPU (not this CPU's
# instruction set) decides whether it is native; every other name runs on this CPU.
GPU_BACKENDS = ("ort-cuda", "ort-trt", "tensorrt")


def get_backend(name: str) -> Backend:
    backends = _backends()
    if name not in backends:
        raise UsageError(
            f"unknown backend {name!r}", hint=f"choose one of: {', '.join(BACKEND_NAMES)}"
        )
    return backends[name]


def capabilities() -> dict[str, Capability]:
    return {name: backend.capability() for name, backend in _backends().items()}
