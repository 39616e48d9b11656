"""The environment a report was measured in: enough to tell whether two reports compare."""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import sys
from pathlib import Path

from alexnet_deploy import sysinfo

RUNTIMES = (
    "torch",
    "onnx",
    "onnxruntime",
    "onnxruntime-gpu",
    "openvino",
    "tensorrt",
    "numpy",
    "polars",
)


def git_commit(cwd: Path | None = None) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=cwd or Path(__file__).parent,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=cwd or Path(__file__).parent,
            check=True,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def environment() -> dict:
    from alexnet_deploy import __version__
    from alexnet_deploy.cpu_isa import this_cpu

    cpu = sysinfo.cpu_info()
    return {
        "cpu": cpu["model"],
        "cpu_features": cpu["features"],
        "cpu_isa": this_cpu().name,  # the int8 instruction-set class (alexnet_deploy.cpu_isa)
        "logical_cores": cpu["logical_cores"],
        "memory_bytes": sysinfo.memory_bytes(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "executable": sys.executable,
        "runtimes": {
            name: sysinfo.package_version(name)
            for name in RUNTIMES
            if sysinfo.package_version(name)
        },
        "gpus": sysinfo.gpu_info(),
        "tool_version": __version__,
        "git_commit": git_commit(),
    }


def comparable_key(env: dict) -> str:
    """What must match for absolute timings to compare: hardware and runtime versions (not the
    git commit: comparing commits is the point)."""
    subset = {k: env.get(k) for k in ("cpu", "cpu_features", "logical_cores", "runtimes", "gpus")}
    return hashlib.sha256(json.dumps(subset, sort_keys=True).encode()).hexdigest()[:16]
