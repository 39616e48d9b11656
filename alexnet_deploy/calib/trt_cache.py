"""A TensorRT-style INT8 calibration cache (legacy: TensorRT 10's implicit quantization).

TensorRT 10.1 deprecated calibrators and 11 removed them; the Q/DQ artifacts are the supported
route. For users still on implicit INT8, this writes the text cache TensorRT's calibrators
read: a header line, then ``tensor: <big-endian float32 scale as 8 hex digits>`` per tensor,
with scale = max(|min|, |max|) / 127 (symmetric INT8). Tensor names are the ONNX tensor
names, which TensorRT's ONNX parser keeps. TensorRT warns, but reads, a cache whose header
names another version. Never run against a real TensorRT here (no GPU).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from alexnet_deploy.fileio import write_text_atomic

HEADER = "TRT-100000-EntropyCalibration2"


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


def write_trt_cache(tensors, out: Path) -> Path:
    return write_text_atomic(out, cache_text(tensors))
