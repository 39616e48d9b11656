"""Which shared libraries a compiled library needs, and whether this machine has them.

onnxruntime-gpu lists its CUDA and TensorRT providers whatever is installed and falls back to
the CPU in silence; whether a provider can load depends on the libraries its own ``.so`` names
(DT_NEEDED: ``libnvinfer.so.10``, ``libcudart.so.12``, ...). Those names are read here from the
ELF file itself with pyelftools, without loading it, and each is looked for the way the dynamic
loader and the NVIDIA wheels provide them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def needed_libraries(path: Path) -> list[str]:
    """The DT_NEEDED names of an ELF shared library, in order. Raises ValueError for a file
    that is not an ELF file."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as handle:
        try:
            elf = ELFFile(handle)
            # the dynamic segment, as the loader reads it (section headers may be stripped)
            return [
                tag.needed
                for segment in elf.iter_segments()
                if segment["p_type"] == "PT_DYNAMIC"
                for tag in segment.iter_tags("DT_NEEDED")
            ]
        except ELFError as err:
            raise ValueError(f"{path} is not an ELF file ({err})") from None


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
