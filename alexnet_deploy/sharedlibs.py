"""Which shared libraries a compiled library needs, and whether this machine has them.

onnxruntime-gpu lists its CUDA and TensorRT providers whatever is installed and falls back to
the CPU in silence; whether a provider can load depends on the libraries its own ``.so`` names
(DT_NEEDED: ``libnvinfer.so.10``, ``libcudart.so.12``, ...). Those names are read here from the
ELF file itself (64-bit little-endian, as every Linux wheel of these packages is), without
loading it, and each is looked for the way the dynamic loader and the NVIDIA wheels provide them.
"""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

DT_NEEDED, DT_STRTAB = 1, 5
PT_DYNAMIC, PT_LOAD = 2, 1


def needed_libraries(path: Path) -> list[str]:
    """The DT_NEEDED names of an ELF shared library, in order. Raises ValueError for a file
    that is not a 64-bit little-endian ELF."""
    data = Path(path).read_bytes()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError(f"{path} is not a 64-bit little-endian ELF file")
    phoff, phentsize, phnum = (
        struct.unpack_from("<Q", data, 0x20)[0],
        struct.unpack_from("<H", data, 0x36)[0],
        struct.unpack_from("<H", data, 0x38)[0],
    )
    loads, dynamic = [], None
    for i in range(phnum):
        kind, _flags, offset, vaddr, _paddr, filesz = struct.unpack_from(
            "<IIQQQQ", data, phoff + i * phentsize
        )
        if kind == PT_LOAD:
            loads.append((vaddr, offset, filesz))
        elif kind == PT_DYNAMIC:
            dynamic = (offset, filesz)
    if dynamic is None:
        return []
    entries = []
    for at in range(dynamic[0], dynamic[0] + dynamic[1], 16):
        tag, value = struct.unpack_from("<qQ", data, at)
        if tag == 0:
            break
        entries.append((tag, value))
    strtab_addr = next((v for t, v in entries if t == DT_STRTAB), None)
    if strtab_addr is None:
        return []
    # the string table's address is virtual: find the file offset through the load segments
    base = next(
        (off + strtab_addr - va for va, off, size in loads if va <= strtab_addr < va + size), None
    )
    if base is None:
        return []
    names = []
    for tag, value in entries:
        if tag == DT_NEEDED:
            end = data.index(b"\0", base + value)
            names.append(data[base + value : end].decode())
    return names


def _search_dirs() -> list[Path]:
    """Where the loader and the NVIDIA wheels put libraries: LD_LIBRARY_PATH, the system
    directories, and site-packages' nvidia/*/lib and tensorrt_libs."""
    dirs = [Path(p) for p in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p]
    dirs += [Path(p) for p in ("/lib", "/usr/lib", "/lib64", "/usr/lib64", "/usr/local/lib")]
    dirs += [Path(p) for p in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu")]
    dirs += [Path("/usr/local/cuda/lib64")]
    for entry in sys.path:
        root = Path(entry)
        if root.is_dir():
            dirs += sorted(root.glob("nvidia/*/lib")) + sorted(root.glob("tensorrt_libs"))
    return dirs


def find_library(
    name: str, extra_dirs: list[Path] | None = None, search: list[Path] | None = None
) -> Path | None:
    """``name`` in ``extra_dirs``, then in ``search`` (default: the loader's and the NVIDIA
    wheels' directories, listed anew)."""
    for directory in [*(extra_dirs or []), *(search if search is not None else _search_dirs())]:
        candidate = directory / name
        if candidate.exists():
            return candidate
    return None


def missing_libraries(path: Path) -> list[str]:
    """The libraries ``path`` needs that are nowhere to be found (its own directory counts)."""
    search = [Path(path).parent, *_search_dirs()]  # listed once for every name
    return [name for name in needed_libraries(path) if find_library(name, search=search) is None]
