"""The CPU's int8 instruction-set class, and what follows from it for INT8 artifacts and ceilings.

INT8 numerics differ between CPU classes, not only speed: ONNX Runtime's x86 kernels without
VNNI multiply u8 x s8 pairs with VPMADDUBSW, whose 16-bit intermediate sums saturate, so the
same Q/DQ file gives other logits there (ONNX Runtime's quantization guide: "use reduce_range
... on AVX2 and AVX512 (non-VNNI) machines"; "no such issue on x64 with VNNI and ARM").

Classes, decided from the flags the kernel reports (``/proc/cpuinfo``):

* ``vnni``: x86 with AVX512-VNNI, AVX-VNNI or AMX-INT8: u8 x s8 dot products accumulate in 32 bits.
* ``avx512``: x86 AVX-512 without VNNI: the saturating VPMADDUBSW path, 512 bits wide.
* ``avx2``: x86 AVX2 without VNNI: the same saturating path, 256 bits wide.
* ``arm64``: AArch64 with the dot-product extension (``asimddp``; ``i8mm`` noted): no saturation.
* ``portable``: none of these recognised (another vendor's flags, an old x86, an ARM without
  dot products, no /proc/cpuinfo): the tool still runs, with the form that is faithful on
  every kernel, and says why.
"""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import dataclass
from pathlib import Path

ISA_CLASSES = ("vnni", "avx512", "avx2", "arm64", "portable")
CPUINFO = Path("/proc/cpuinfo")  # module attribute so a test can point it at another file

# Upper bounds of work per core per cycle, from each class's widest instructions and the
# number of ports that issue them: (FP32 FLOPs via FMA, INT8 ops via the int8 dot product).
# They are ceilings, so where a class spans designs the larger figure is taken.
#   x86 full-width AVX-512 (Intel; AMD from Zen 5): 2 FMA ports x 16 lanes x 2 = 64 FLOPs;
#     VPDPBUSD or VPMADDUBSW on 2 ports x 64 u8*s8 products x 2 = 256 ops.
#   AMD Zen 4 AVX-512 (family 25): 256-bit datapaths, 512-bit ops split in two: 32 / 128.
#   AVX2 (+FMA; AVX-VNNI alike): 2 ports x 8 lanes x 2 = 32 FLOPs; 2 x 32 x 2 = 128 ops.
#   AMX-INT8: one TMUL, 1024 int8 products per cycle = 2048 ops.
#   ARM64: up to 4 128-bit pipes: 4 x 4 x 2 = 32 FLOPs; SDOT 4 x 16 x 2 = 128, SMMLA 256 ops.
#   Unknown: the largest figure of any class but AMX, so the ceiling is never too low.
PEAK_PER_CYCLE = {
    "x86-avx512": (64, 256),
    "x86-avx512-half": (32, 128),
    "x86-avx2": (32, 128),
    "x86-amx": (64, 2048),
    "arm64-dot": (32, 128),
    "arm64-i8mm": (32, 256),
    "unknown": (64, 256),
}


@dataclass(frozen=True)
class CpuIsa:
    name: str  # one of ISA_CLASSES
    features: tuple[str, ...]  # the flags that decided it
    vendor: str
    family: int | None
    reason: str  # one line: why this class

    @property
    def int8_saturates(self) -> bool:
        """ONNX Runtime's u8 x s8 kernels sum pairs in 16 bits on this class."""
        return self.name in ("avx512", "avx2")

    @property
    def target(self) -> str:
        """The CPU INT8 target this class asks for (``--target cpu-<class>``)."""
        return f"cpu-{self.name}"

    def peak_key(self) -> str:
        feats = set(self.features)
        if self.name == "arm64":
            return "arm64-i8mm" if "i8mm" in feats else "arm64-dot"
        if "amx_int8" in feats:
            return "x86-amx"
        if "avx512f" in feats:
            # AMD before Zen 5 (family 26) runs AVX-512 on 256-bit datapaths
            half = self.vendor == "AuthenticAMD" and (self.family or 0) < 26
            return "x86-avx512-half" if half else "x86-avx512"
        if "avx2" in feats:
            return "x86-avx2"
        return "unknown"

    def peak_per_cycle(self) -> tuple[int, int]:
        """(FP32 FLOPs, INT8 ops) per core per cycle, upper bounds (see PEAK_PER_CYCLE)."""
        return PEAK_PER_CYCLE[self.peak_key()]

    def half_float_per_cycle(self) -> dict[str, int]:
        """FLOPs per core per cycle of the 16-bit float paths this CPU has, upper bounds: a
        runtime left to choose (OpenVINO on its own picks bf16 where the CPU has it) computes
        there, above the FP32 peak. AMX tiles: 1024 products per cycle; AVX-512 BF16/FP16 and
        ARM's BF16/FP16 vectors: twice the FP32 rate (ARM's BFMMLA: four times)."""
        feats, fp32 = set(self.features), self.peak_per_cycle()[0]
        paths = {}
        if "amx_bf16" in feats:
            paths["bf16"] = 2048
        elif "avx512_bf16" in feats:
            paths["bf16"] = 2 * fp32
        elif "bf16" in feats:  # ARM64
            paths["bf16"] = 4 * fp32
        if "amx_fp16" in feats:
            paths["fp16"] = 2048
        elif "avx512_fp16" in feats or "asimdhp" in feats:
            paths["fp16"] = 2 * fp32
        return paths

    def as_dict(self) -> dict:
        return {"class": self.name, "features": list(self.features), "reason": self.reason}


_X86_DECIDING = (
    *("avx512_vnni", "avx_vnni", "amx_int8", "avx512f", "avx2", "fma"),
    *("avx512_bf16", "avx512_fp16", "amx_bf16", "amx_fp16"),  # for the 16-bit float peaks
)
_ARM_DECIDING = ("asimddp", "i8mm", "bf16", "asimdhp")


def classify(flags: set[str], machine: str, vendor: str = "", family: int | None = None) -> CpuIsa:
    """The class of a CPU with these ``flags`` (x86 'flags' or ARM 'Features' words)."""
    machine = machine.lower()
    if machine in ("x86_64", "amd64", "i686", "i386"):
        found = tuple(f for f in _X86_DECIDING if f in flags)
        vnni = [f for f in ("avx512_vnni", "avx_vnni", "amx_int8") if f in flags]
        if vnni:
            return CpuIsa("vnni", found, vendor, family, f"x86 with {', '.join(vnni)}")
        if "avx512f" in flags and "avx512bw" in flags:
            return CpuIsa("avx512", found, vendor, family, "x86 AVX-512 without VNNI")
        if "avx2" in flags:
            return CpuIsa("avx2", found, vendor, family, "x86 AVX2 without VNNI")
        reason = "x86 without AVX2 or VNNI" if flags else "no CPU flags could be read"
        return CpuIsa("portable", found, vendor, family, reason)
    if machine in ("aarch64", "arm64"):
        found = tuple(f for f in _ARM_DECIDING if f in flags)
        if "asimddp" in flags:
            return CpuIsa("arm64", found, vendor, family, f"ARM64 with {', '.join(found)}")
        return CpuIsa("portable", found, vendor, family, "ARM64 without dot-product instructions")
    return CpuIsa(
        "portable", (), vendor, family, f"processor {machine or 'unknown'} is not x86 or ARM64"
    )


def read_cpuinfo(path: Path) -> tuple[set[str], str, int | None]:
    """(flags, vendor, family) from a /proc/cpuinfo-style file; empty when unreadable."""
    flags: set[str] = set()
    vendor, family = "", None
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return flags, vendor, family
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("flags", "features") and not flags:
            flags = set(value.split())
        elif key == "vendor_id" and not vendor:
            vendor = value.strip()
        elif key == "cpu family" and family is None and value.strip().isdigit():
            family = int(value.strip())
    return flags, vendor, family


@functools.lru_cache(maxsize=4)
def _detect(path: Path, machine: str) -> CpuIsa:
    flags, vendor, family = read_cpuinfo(path)
    return classify(flags, machine, vendor, family)


def this_cpu() -> CpuIsa:
    """This machine's class (read once per cpuinfo path)."""
    return _detect(Path(CPUINFO), platform.machine())


def measured_clock_ghz(seconds: float = 0.05, tries: int = 5) -> float | None:
    """This core's clock, timed on a chain of dependent integer adds (one cycle each on every
    x86-64 core), so turbo counts: a VM's /proc/cpuinfo reports the nominal clock. The most of
    ``tries`` short runs (noise only slows a run). None off x86-64 or where executable memory
    is refused."""
    import ctypes
    import mmap
    import time

    if platform.machine().lower() not in ("x86_64", "amd64"):
        return None
    adds = 10
    body = b"\x48\x83\xc0\x01" * adds  # add rax, 1
    # xor eax, eax; loop: body; dec rdi; jnz loop; ret   (System V: count in rdi)
    code = b"\x31\xc0" + body + b"\x48\xff\xcf\x75" + bytes([256 - (len(body) + 5)]) + b"\xc3"
    try:
        buf = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    except (OSError, ValueError, AttributeError):
        return None
    buf.write(code)
    anchor = ctypes.c_char.from_buffer(buf)
    loop = ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64)(ctypes.addressof(anchor))
    try:
        loop(1000)
        start = time.perf_counter()
        loop(10**6)
        per_iteration = (time.perf_counter() - start) / 10**6
        count = max(10**5, int(seconds / max(per_iteration, 1e-12)))
        best = 0.0
        for _ in range(tries):
            start = time.perf_counter()
            if loop(count) != adds * count:
                return None
            best = max(best, adds * count / (time.perf_counter() - start))
        return best / 1e9
    finally:
        del loop, anchor  # both point into the buffer, which closes only without them
        buf.close()


def reported_clock_ghz() -> float | None:
    """The clock the kernel reports (nominal in a VM; the maximum where cpufreq exists)."""
    sysfs = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
    try:
        return int(sysfs.read_text()) / 1e6
    except (OSError, ValueError):
        pass
    try:
        for line in Path(CPUINFO).read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "cpu MHz":
                return float(value) / 1e3
    except (OSError, ValueError):
        pass
    return None


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
