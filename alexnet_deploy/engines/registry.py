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


BACKEND_NAMES = ("ort", "ort-cuda", "ort-trt", "openvino", "torch", "tensorrt")


def get_backend(name: str) -> Backend:
    backends = _backends()
    if name not in backends:
        raise UsageError(
            f"unknown backend {name!r}", hint=f"choose one of: {', '.join(BACKEND_NAMES)}"
        )
    return backends[name]


def capabilities() -> dict[str, Capability]:
    return {name: backend.capability() for name, backend in _backends().items()}
