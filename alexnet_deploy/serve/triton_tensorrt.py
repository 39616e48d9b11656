"""Which TensorRT a Triton server runs, and whether a TensorRT plan can run in it.

A plan runs only on the TensorRT version that built it, unless it was built version-compatible
(then on later releases of the same major): engines/trt_portability.py. The server's TensorRT is
given (``--triton-tensorrt 10.13.3.9``) or looked up for a release of Triton's
``trtllm-python-py3`` container (``--triton-release 25.12``) in the table NVIDIA publishes in
triton-inference-server/server, docs/introduction/compatibility.md ("Release Compatibility
Matrix"). The main ``py3`` containers' TensorRT is listed only in NVIDIA's Frameworks Support
Matrix, which this tool does not carry: give it with ``--triton-tensorrt``.
"""

from __future__ import annotations

from alexnet_deploy.errors import AlexnetDeployError, UsageError

# Triton release -> TensorRT in its trtllm-python-py3 container (NVIDIA's compatibility.md)
TRTLLM_CONTAINER_TENSORRT = {
    "24.05": "10.0.1.6", "24.06": "10.0.1", "24.07": "10.1.0", "24.08": "10.3.0",
    "24.09": "10.4.0", "24.10": "10.4.0", "24.11": "10.6.0", "24.12": "10.7.0",
    "25.01": "10.8.0.43", "25.02": "10.8.0.43", "25.03": "10.9.0.34", "25.04": "10.9.0.34",
    "25.05": "10.9.0.34", "25.06": "10.10.0.31", "25.07": "10.10.0.31", "25.08": "10.11.0.33",
    "25.09": "10.11.0.33", "25.10": "10.11.0.33", "25.11": "10.13.3.9", "25.12": "10.13.3.9",
    "26.01": "10.13.3.9", "26.02": "10.13.3.9", "26.03": "10.14.1.48", "26.04": "10.14.1.48",
    "26.05": "10.14.1.48", "26.06": "10.14.1.48", "26.07": "10.14.1.48",
}  # fmt: skip


def server_tensorrt(release: str | None, tensorrt: str | None) -> str | None:
    """The TensorRT version of the target server (None: not said)."""
    if release and tensorrt:
        raise UsageError("give --triton-release or --triton-tensorrt, not both")
    if release is None:
        return tensorrt
    if release not in TRTLLM_CONTAINER_TENSORRT:
        known = ", ".join(sorted(TRTLLM_CONTAINER_TENSORRT))
        raise UsageError(
            f"--triton-release {release!r}: its TensorRT version is not in the table this tool "
            f"carries (trtllm-python-py3 containers {known})",
            hint="give the server's TensorRT version itself: --triton-tensorrt X.Y.Z (NVIDIA's "
            "Frameworks Support Matrix lists it per container)",
        )
    return TRTLLM_CONTAINER_TENSORRT[release]


def check_plan_for_server(plan: str, side, server: str | None) -> str:
    """A line for the repository's summary: the plan's TensorRT and where it runs; refuses a
    plan the server's TensorRT cannot run."""
    from alexnet_deploy.engines.trt_portability import portability_of, version_mismatch

    level, version_compatible = portability_of(side.options)
    runs = (
        f"TensorRT {side.runtime_version.split('.')[0]}.x from {side.runtime_version} on"
        if version_compatible
        else f"TensorRT {side.runtime_version} only"
    )
    gpus = {
        "none": f"GPU {side.details.get('gpu', {}).get('name')!r}",
        "ampere+": "Ampere and later GPUs",
        "same-cc": f"compute capability {side.details.get('gpu', {}).get('compute_capability')}",
    }[level]
    if server is None:
        return f"{plan}: runs on {runs}, {gpus}; the server's TensorRT was not given (--triton-tensorrt or --triton-release)"
    why = version_mismatch(side.runtime_version, server, version_compatible)
    if why:
        raise AlexnetDeployError(
            f"TensorRT plan {plan} was {why.format(where='the Triton server')}",
            hint=f"rebuild it with TensorRT {server} (the server's), or build it with "
            "--version-compatible on an earlier release of the same major",
        )
    return f"{plan}: runs on the server's TensorRT {server} ({runs}), {gpus}"
