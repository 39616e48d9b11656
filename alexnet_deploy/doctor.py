"""doctor: what this machine can run, and why not where it cannot."""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass
from pathlib import Path

from alexnet_deploy import sysinfo


@dataclass(frozen=True)
class Check:
    component: str
    status: str  # "ok", "missing" or "unavailable"
    detail: str


def _import_check(component: str, module: str, distributions: tuple[str, ...], extra: str) -> Check:
    version = next((v for d in distributions if (v := sysinfo.package_version(d))), None)
    if version is None:
        return Check(component, "missing", f"not installed; pip install 'alexnet-deploy[{extra}]'")
    try:
        __import__(module)
    except Exception as err:  # a broken install must be reported, whatever it raises
        return Check(component, "unavailable", f"{version} installed but import failed: {err}")
    return Check(component, "ok", version)


def _onnxruntime_providers() -> Check:
    try:
        import onnxruntime as ort
    except ImportError as err:
        return Check("onnxruntime providers", "unavailable", str(err))
    return Check("onnxruntime providers", "ok", ", ".join(ort.get_available_providers()))


# onnxruntime-gpu's provider libraries, by provider; the extra that brings what each needs
PROVIDER_LIBRARIES = {
    "CUDAExecutionProvider": ("libonnxruntime_providers_cuda.so", "gpu"),
    "TensorrtExecutionProvider": ("libonnxruntime_providers_tensorrt.so", "tensorrt"),
}


def _provider_libraries() -> list[Check]:
    """Whether each GPU provider of the installed onnxruntime can load: the libraries its own
    .so needs (read from the file, not loaded), found or not. onnxruntime-gpu lists these
    providers whatever is installed and falls back to the CPU in silence."""
    import importlib.util

    from alexnet_deploy.sharedlibs import missing_libraries

    spec = importlib.util.find_spec("onnxruntime")
    if spec is None or spec.origin is None:
        return []
    capi = Path(spec.origin).parent / "capi"
    rows = []
    for provider, (library, extra) in PROVIDER_LIBRARIES.items():
        path = capi / library
        name = f"provider {provider.removesuffix('ExecutionProvider')}"
        if not path.is_file():
            rows.append(Check(name, "unavailable", f"not in this onnxruntime build ({library})"))
            continue
        missing = missing_libraries(path)
        if missing:
            rows.append(
                Check(
                    name,
                    "unavailable",
                    f"cannot load: {', '.join(missing)} not found; pip install "
                    f"'alexnet-deploy[{extra}]' (a version whose libraries these names match)",
                )
            )
        else:
            rows.append(Check(name, "ok", f"every library {library} needs is present"))
    return rows


def _gpu() -> Check:
    gpus = sysinfo.gpu_info()
    if not gpus:
        return Check("gpu", "unavailable", "no NVIDIA GPU found (nvidia-smi missing or no device)")
    text = "; ".join(
        f"{g['name']} (sm {g['compute_capability']}, driver {g['driver']})" for g in gpus
    )
    return Check("gpu", "ok", text)


def _int8_class() -> Check:
    from alexnet_deploy.calib.int8 import CPU_FORMS
    from alexnet_deploy.cpu_isa import this_cpu

    isa = this_cpu()
    form = CPU_FORMS[isa.name].describe()
    status = "ok" if isa.name != "portable" else "unavailable"
    return Check("cpu int8 class", status, f"{isa.name} ({isa.reason}); --target cpu writes {form}")


def run_checks() -> list[Check]:
    cpu = sysinfo.cpu_info()
    features = ", ".join(
        f"{name}={'yes' if present else 'no'}" for name, present in cpu["features"].items()
    )
    return [
        Check("python", "ok", f"{platform.python_version()} ({sys.executable})"),
        Check("os", "ok", platform.platform()),
        Check("cpu", "ok", f"{cpu['model']}, {cpu['logical_cores']} logical cores"),
        Check("cpu features", "ok", features),
        _int8_class(),
        _import_check("torch", "torch", ("torch",), "dev"),
        _import_check("onnx", "onnx", ("onnx",), "dev"),
        _import_check("onnxruntime", "onnxruntime", ("onnxruntime", "onnxruntime-gpu"), "dev"),
        _onnxruntime_providers(),
        *_provider_libraries(),
        _import_check("openvino", "openvino", ("openvino",), "openvino"),
        _import_check(
            "tensorrt", "tensorrt", ("tensorrt", "tensorrt-cu12", "tensorrt-cu13"), "tensorrt"
        ),
        _gpu(),
        *_backends(),
    ]


def _backends() -> list[Check]:
    """One row per engine backend: available (with its runtime version) or why not."""
    from alexnet_deploy.engines.registry import capabilities

    rows = []
    for name, cap in capabilities().items():
        if cap.available:
            rows.append(Check(f"backend {name}", "available", f"{cap.version}"))
        else:
            fix = f"; pip install 'alexnet-deploy[{cap.extra}]'" if cap.extra else ""
            rows.append(Check(f"backend {name}", "unavailable", cap.reason + fix))
    return rows
