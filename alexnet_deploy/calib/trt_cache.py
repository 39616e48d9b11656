"""A TensorRT-style INT8 calibration cache (legacy: TensorRT 10's implicit quantization).

TensorRT 10.1 deprecated calibrators and 11 removed them; the Q/DQ artifacts are the supported
route. For users still on implicit INT8, this writes the text cache TensorRT's calibrators
read: a header line, then ``tensor: <big-endian float32 scale as 8 hex digits>`` per tensor,
with scale = max(|min|, |max|) / 127 (symmetric INT8). Tensor names are the ONNX tensor
names, which TensorRT's ONNX parser keeps.

TensorRT skips a cache whose header names an incompatible version (NVIDIA, TensorRT issue #1378),
and the build then fails for want of scaling factors. The version is not known when calibrating
(no TensorRT here), so the cache is written with a placeholder header and the legacy build
(engines/tensorrt_legacy.py) hands TensorRT the same scales under the header of the TensorRT
that runs. Beside the cache, ``.json`` records the sha256 of the FP32 model it was calibrated
on: a cache of another model is refused, not used. Never run against a real TensorRT here.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from alexnet_deploy.fileio import write_text_atomic

HEADER = "TRT-100000-EntropyCalibration2"  # placeholder: replaced by header_for() at build
PROVENANCE_SCHEMA = "alexnet-deploy/trt-calibration-cache/1"


def header_for(version: str) -> str:
    """The header TensorRT ``version`` writes: its library version number (major * 10000 +
    minor * 100 + patch from 10.0 on, as getInferLibVersion; major * 1000 + ... before)."""
    parts = [int(p) for p in version.split(".")[:3]] + [0, 0]
    major, minor, patch = parts[:3]
    code = major * (10000 if major >= 10 else 1000) + minor * 100 + patch
    return f"TRT-{code}-EntropyCalibration2"


def with_header(text: str, version: str) -> str:
    """The same scales under the header of TensorRT ``version``."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("TRT-"):
        raise ValueError("not a TensorRT calibration cache: the first line must start with 'TRT-'")
    return "\n".join([header_for(version), *lines[1:]]) + "\n"


def provenance_path(cache: Path) -> Path:
    return Path(cache).with_name(Path(cache).name + ".json")


def scale_hex(lowest, highest) -> str:
    amax = max(float(np.abs(np.asarray(lowest)).max()), float(np.abs(np.asarray(highest)).max()))
    scale = max(amax, 1e-12) / 127.0
    return struct.pack(">f", scale).hex()


def cache_text(tensors) -> str:
    lines = [HEADER]
    for name in sorted(tensors.keys()):
        lowest, highest = tensors[name].range_value
        lines.append(f"{name}: {scale_hex(lowest, highest)}")
    return "\n".join(lines) + "\n"


def parse_cache(text: str) -> dict[str, float]:
    """Read a cache back into {tensor: scale} (for tests and for inspecting a user's cache)."""
    lines = text.strip().splitlines()
    if not lines or not lines[0].startswith("TRT-"):
        raise ValueError("not a TensorRT calibration cache: the first line must start with 'TRT-'")
    scales = {}
    for line in lines[1:]:
        name, _, value = line.rpartition(": ")
        scales[name] = struct.unpack(">f", bytes.fromhex(value))[0]
    return scales


def write_trt_cache(tensors, out: Path, source_sha256: str) -> Path:
    """The cache, and beside it the sha256 of the FP32 model it was calibrated on."""
    from alexnet_deploy.fileio import write_json_atomic

    write_json_atomic(
        provenance_path(out), {"schema": PROVENANCE_SCHEMA, "source_sha256": source_sha256}
    )
    return write_text_atomic(out, cache_text(tensors))


def check_cache_source(cache: Path, source_sha256: str) -> None:
    """Refuse a cache calibrated on another model (or of unknown origin)."""
    import json

    from alexnet_deploy.errors import AlexnetDeployError

    remake = "remake it with 'alexnet-deploy calibrate MODEL --force'"
    record = provenance_path(cache)
    try:
        recorded = json.loads(record.read_text()).get("source_sha256")
    except (OSError, ValueError, AttributeError):
        raise AlexnetDeployError(
            f"{cache} has no readable record of the model it was calibrated on ({record})",
            hint=remake,
        ) from None
    if recorded != source_sha256:
        raise AlexnetDeployError(
            f"{cache} was calibrated on another model than this one (sha256 differs: the model "
            "was re-exported or replaced since)",
            hint=remake,
        )
