"""Facts about this machine and its runtimes, for doctor and for every report's fingerprint."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import platform
import shutil
import subprocess

# CPU flags that decide which kernels a runtime can use (from /proc/cpuinfo's names).
CPU_FEATURES = {
    "avx2": "avx2",
    "avx512": "avx512f",
    "vnni": "avx512_vnni",
    "avx_vnni": "avx_vnni",
    "amx": "amx_tile",
    "fp16 (avx512)": "avx512_fp16",
}


def cpu_info() -> dict[str, object]:
    """Model name, logical cores and the features in :data:`CPU_FEATURES` (/proc/cpuinfo read
    by cpu_isa, its one reader)."""
    from alexnet_deploy.cpu_isa import cpuinfo_fields, flags_of

    fields = cpuinfo_fields()
    flags = flags_of(fields)
    return {
        "model": fields.get("model name") or platform.processor() or platform.machine(),
        "logical_cores": os.cpu_count(),
        "features": {name: flag in flags for name, flag in CPU_FEATURES.items()},
    }


def package_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def gpu_info() -> list[dict[str, str]]:
    """GPUs as nvidia-smi reports them; empty when there is none (or no driver)."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run(
            [
                smi,
                "--query-gpu=name,compute_cap,driver_version,memory.total",
                "--format=csv,noheader",
            ],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 4:
            gpus.append(
                dict(zip(("name", "compute_capability", "driver", "memory"), parts, strict=True))
            )
    return gpus


def memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def available_memory_bytes() -> int | None:
    """Memory available to a new allocation now (Linux's MemAvailable), or None."""
    try:
        with open("/proc/meminfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None
