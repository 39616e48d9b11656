"""Where a TensorRT plan may run: the GPU and TensorRT version that built it, unless it was
built portable. Decided from the sidecar without a GPU (tested on the CPU), used when an engine
is loaded and when ``package --triton`` checks plans against the server's TensorRT.

* Hardware compatibility (``--hardware-compat``, TensorRT's ``HardwareCompatibilityLevel``):
  ``none`` runs on the GPU model that built it; ``ampere+`` on any GPU of compute capability
  8.0 or later; ``same-cc`` on any GPU of the same compute capability.
* Version compatibility (``--version-compatible``, ``BuilderFlag.VERSION_COMPATIBLE``): the
  plan carries its lean runtime and runs on the TensorRT that built it and any later release of
  the same major version; otherwise only on the exact TensorRT version that built it.
"""

from __future__ import annotations

import re

HARDWARE_LEVELS = {"none": None, "ampere+": "AMPERE_PLUS", "same-cc": "SAME_COMPUTE_CAPABILITY"}
AMPERE_COMPUTE_CAPABILITY = (8, 0)


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", str(version)))


def version_mismatch(built: str, running: str, version_compatible: bool) -> str | None:
    """Why a plan built with TensorRT ``built`` cannot run on TensorRT ``running`` (None: it can)."""
    if not version_compatible:
        if str(built) == str(running):
            return None
        return (
            f"built with TensorRT {built}, {{where}} has {running} (a plan runs only on the "
            "TensorRT version that built it unless built with --version-compatible)"
        )
    b, r = version_tuple(built), version_tuple(running)
    if b[:1] == r[:1] and r >= b:
        return None
    return (
        f"built version-compatible with TensorRT {built}, {{where}} has {running} (such a plan "
        f"runs on TensorRT {b[0] if b else '?'}.x from {built} on)"
    )


def _capability(gpu: dict) -> tuple[int, ...]:
    return version_tuple(gpu.get("compute_capability", ""))


def hardware_mismatch(level: str, built_gpu: dict, gpu: dict) -> str | None:
    """Why a plan built on ``built_gpu`` at hardware-compatibility ``level`` cannot run on
    ``gpu`` (None: it can)."""
    if level == "ampere+":
        if _capability(gpu) >= AMPERE_COMPUTE_CAPABILITY:
            return None
        return (
            f"built for Ampere and later GPUs (compute capability 8.0+), {{where}} has "
            f"{gpu.get('name')!r} (compute capability {gpu.get('compute_capability')})"
        )
    if level == "same-cc":
        if _capability(gpu) == _capability(built_gpu):
            return None
        return (
            f"built for compute capability {built_gpu.get('compute_capability')!r}, {{where}} "
            f"has {gpu.get('compute_capability')!r}"
        )
    for key, label in (("name", "GPU"), ("compute_capability", "compute capability")):
        if built_gpu.get(key) != gpu.get(key):
            return f"built for {label} {built_gpu.get(key)!r}, {{where}} has {gpu.get(key)!r}"
    return None


def portability_of(options: dict) -> tuple[str, bool]:
    """(hardware level, version compatible) from a sidecar's options; sidecars from before
    these options existed describe plans built for their own GPU and version."""
    return options.get("hardware_compat", "none"), bool(options.get("version_compatible", False))
