"""The real TensorRT Python bindings on a machine without TensorRT: the compiled module of a
release (``tensorrt-cu12-bindings``, about 1.2 MB from the package registry) imported against
stub ``libnvinfer``/``libnvonnxparser``/``libnvinfer_plugin`` libraries built here with gcc.
Nothing can build or run an engine; every class, member, enum value and pybind signature of the
release can be read. The wheels are cached (``$ALEXNET_DEPLOY_CACHE`` or
``~/.cache/alexnet-deploy``); a test skips, with the reason, only when the registry cannot be
reached or no C compiler exists.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

# the C entry points the bindings import from the three libraries (read with nm -D from the
# 10.13 and 11.4 modules; nm, where present, adds any a release needs beyond these)
ENTRY_POINTS = (
    "createInferBuilder_INTERNAL",
    "createInferRefitter_INTERNAL",
    "createInferRuntime_INTERNAL",
    "createNvOnnxParserRefitter_INTERNAL",
    "createNvOnnxParser_INTERNAL",
    "getBuilderPluginRegistry",
    "getNvOnnxParserVersion",
    "getPluginRegistry",
    "initLibNvInferPlugins",
    "getInferLibVersion",
)
LIBRARIES = ("libnvinfer", "libnvonnxparser", "libnvinfer_plugin")
SYSTEM_PREFIXES = ("Py", "_Py", "dl", "__", "_Z", "_Unwind", "mem", "str", "pthread")

PROBE = r"""
import inspect, json, sys
import tensorrt_bindings as trt

def doc(obj):
    text = getattr(obj, "__doc__", None) or ""
    return "\n".join(line for line in text.splitlines() if "(" in line and "->" in line)

api = {"__version__": trt.__version__, "classes": {}, "functions": {}}
for name in dir(trt):
    if name.startswith("_"):
        continue
    obj = getattr(trt, name)
    if inspect.isclass(obj):
        members = {}
        for member in dir(obj):
            if member.startswith("__") and member != "__init__":
                continue
            try:
                value = getattr(obj, member)
            except Exception:
                continue
            kind = "property" if isinstance(inspect.getattr_static(obj, member, None), property) else (
                "value" if isinstance(value, obj) else "callable" if callable(value) else "other")
            members[member] = {"kind": kind, "doc": doc(value) if kind == "callable" else ""}
        api["classes"][name] = members
    elif callable(obj):
        api["functions"][name] = doc(obj)
json.dump(api, sys.stdout)
"""


def cache_root() -> Path:
    return Path(os.environ.get("ALEXNET_DEPLOY_CACHE", Path.home() / ".cache" / "alexnet-deploy"))


def _wheel(version: str, where: Path) -> Path:
    found = sorted(where.glob(f"tensorrt_cu12_bindings-{version}-*.whl"))
    if found:
        return found[0]
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", str(where),
         f"tensorrt-cu12-bindings=={version}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    found = sorted(where.glob(f"tensorrt_cu12_bindings-{version}-*.whl"))
    if done.returncode != 0 or not found:
        pytest.skip(
            f"the package registry did not give tensorrt-cu12-bindings=={version}: "
            + (done.stderr.strip().splitlines() or ["no output"])[-1]
        )
    return found[0]


def _needed_symbols(module: Path) -> set[str]:
    symbols = set(ENTRY_POINTS)
    nm = shutil.which("nm")
    if nm:
        out = subprocess.run([nm, "-D", "--undefined-only", str(module)], capture_output=True,
                             text=True).stdout  # fmt: skip
        for line in out.splitlines():
            name = line.split()[-1].split("@")[0]
            if not name.startswith(SYSTEM_PREFIXES) and "GLIBC" not in line:
                symbols.add(name)
    return symbols


def _stubs(module: Path, major: str, where: Path) -> Path:
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        pytest.skip("no C compiler (gcc) to build the stub TensorRT libraries")
    where.mkdir(parents=True, exist_ok=True)
    source = where / "stub.c"
    source.write_text(
        "/* stand-ins for TensorRT's C entry points: the bindings load; nothing runs */\n"
        + "".join(
            f"void *{name}(void) {{ return 0; }}\n" for name in sorted(_needed_symbols(module))
        )
    )
    for lib in LIBRARIES:
        target = where / f"{lib}.so.{major}"
        if not target.is_file():
            subprocess.run(
                [gcc, "-shared", "-fPIC", "-o", str(target), str(source),
                 f"-Wl,-soname,{target.name}"],
                check=True, capture_output=True,
            )  # fmt: skip
    return where


def _environment(version: str) -> dict:
    """Wheel fetched (or cached), unpacked, stubs built: the environment that imports it."""
    root = cache_root() / "tensorrt-bindings" / version
    wheel = _wheel(version, root)
    unpacked = root / "unpacked"
    if not (unpacked / "tensorrt_bindings").is_dir():
        with zipfile.ZipFile(wheel) as archive:
            archive.extractall(unpacked)
    module = next((unpacked / "tensorrt_bindings").glob("tensorrt*.so"))
    stubs = _stubs(module, version.split(".")[0], root / "stubs")
    return {
        **os.environ,
        "LD_LIBRARY_PATH": f"{stubs}:{os.environ.get('LD_LIBRARY_PATH', '')}",
        "PYTHONPATH": os.pathsep.join([str(unpacked), str(Path(__file__).resolve().parents[1])]),
    }


def bindings_module(version: str) -> tuple[Path, Path]:
    """The real compiled module of ``version`` (fetched if needed) and the stub libraries' folder."""
    _environment(version)
    root = cache_root() / "tensorrt-bindings" / version
    return next((root / "unpacked" / "tensorrt_bindings").glob("tensorrt*.so")), root / "stubs"


def run_with_bindings(version: str, code: str) -> str:
    """Run Python ``code`` in a process where ``import tensorrt_bindings`` is the real module
    of ``version`` (and this project importable); its standard output."""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True,
        env=_environment(version), timeout=120,
    )  # fmt: skip
    if done.returncode != 0:
        raise AssertionError(f"with the real bindings of {version}:\n{done.stderr}")
    return done.stdout


def bindings_api(version: str) -> dict:
    """The API of the real bindings of TensorRT ``version``: classes with their members
    (kind and pybind signatures) and module functions. Cached as JSON beside the wheel."""
    dump = cache_root() / "tensorrt-bindings" / version / "api.json"
    if dump.is_file():
        return json.loads(dump.read_text())
    api = json.loads(run_with_bindings(version, PROBE))
    dump.write_text(json.dumps(api))
    return api
