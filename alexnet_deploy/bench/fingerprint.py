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


def _git(*args: str, cwd: Path | None = None) -> str:
    """git's output in ``cwd`` (default: this package's checkout); raises OSError or
    SubprocessError where there is no git or no checkout."""
    return subprocess.run(
        ["git", *args],
        capture_output=True,
        text=True,
        timeout=5,
        cwd=cwd or Path(__file__).parent,
        check=True,
    ).stdout.strip()


def git_commit(cwd: Path | None = None) -> str | None:
    try:
        head = _git("rev-parse", "HEAD", cwd=cwd)
        dirty = _git("status", "--porcelain", "--untracked-files=no", cwd=cwd)
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def git_branch(cwd: Path | None = None) -> str | None:
    """The checked-out branch; None on a detached HEAD or outside a checkout."""
    try:
        branch = _git("rev-parse", "--abbrev-ref", "HEAD", cwd=cwd)
    except (OSError, subprocess.SubprocessError):
        return None
    return None if branch in ("", "HEAD") else branch


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
