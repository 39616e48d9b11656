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

Whether bfloat16 is native (AVX512_BF16, AMX-BF16, ARM's ``bf16``) is read from the same flags
(:attr:`CpuIsa.bf16_native`): where it is not, bf16 on this CPU is refused
(:func:`require_native_bf16`), never emulated at a loss.

/proc/cpuinfo is read in one place, :func:`cpuinfo_fields` (sysinfo.py asks it too): the first
processor's ``key : value`` lines. Kept by hand on purpose: py-cpuinfo has had no release since
2022 and takes about a second (subprocesses, probes) for what is one file read here; archspec,
maintained, reads /proc/cpuinfo at a fixed path and answers with named microarchitectures, where
this module needs the raw flags, vendor, family, model name and ``cpu MHz``, from a file a test
can replace (``CPUINFO``).

The clock (:func:`clock_ghz`) is timed on a chain of dependent adds compiled with the package
(``_clock.c``, an optional extension: never machine code written into memory at run time, which
hardened kernels and SELinux's ``execmem`` refuse); where the extension was not built, read from
``perf stat``'s cycle counter over a short busy loop (the clock a core really runs, turbo
included, where the kernel exposes the counter); else cpufreq's ``cpuinfo_max_freq`` and
``scaling_cur_freq``; else /proc/cpuinfo's ``cpu MHz``, which is the current clock on bare metal
and a VM's nominal one: no maximum, so not trusted, and the roofline then anchors its ceiling on
the best measured kernel and says so (bench/roofline.py).
"""

from __future__ import annotations

import functools
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

ISA_CLASSES = ("vnni", "avx512", "avx2", "arm64", "portable")
# module attributes so a test can point them at other files
CPUINFO = Path("/proc/cpuinfo")
CPUFREQ = Path("/sys/devices/system/cpu/cpu0/cpufreq")

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

    def without_amx(self) -> CpuIsa:
        """This CPU as its vector units alone compute (AMX's tiles left out): the peaks of a
        row whose runtime reports that no AMX kernel ran (bench/roofline.py)."""
        return replace(self, features=tuple(f for f in self.features if not f.startswith("amx")))

    @property
    def bf16_native(self) -> bool:
        """Whether this CPU computes bfloat16 in hardware (AVX512_BF16, AMX-BF16, ARM's BF16):
        where it does not, a runtime asked for bf16 converts every value to FP32 and back, slower
        than FP32 and less exact."""
        return "bf16" in self.half_float_per_cycle()

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


def require_native_bf16(cpu: CpuIsa | None = None) -> None:
    """Refuse bf16 on a CPU without native BF16 (never emulated silently), naming the CPU."""
    from alexnet_deploy.errors import AlexnetDeployError

    cpu = cpu or this_cpu()
    if cpu.bf16_native:
        return
    model = cpuinfo_fields().get("model name") or platform.machine() or "unknown"
    raise AlexnetDeployError(
        f"this CPU ({model}, class {cpu.name}) has no native BF16 (AVX512_BF16/AMX-BF16/ARM "
        "BF16): bf16 would be emulated at a loss; use fp32 or int8",
        hint="bf16 runs on CPUs with AVX512_BF16 (Intel Cooper Lake, AMD Zen 4 and later), AMX "
        "(Intel Sapphire Rapids and later) or ARM BF16; on a GPU, TensorRT runs the BF16 "
        "artifact ('alexnet-deploy bf16 MODEL.onnx')",
    )


def cpuinfo_fields(path: Path | None = None) -> dict[str, str]:
    """The first processor's ``key : value`` lines of a /proc/cpuinfo-style file (default
    ``CPUINFO``), keys lower-cased; empty when unreadable. The package's one cpuinfo reader."""
    try:
        text = Path(path or CPUINFO).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, colon, value = line.partition(":")
        key = key.strip().lower()
        if colon and key and key not in fields:
            fields[key] = value.strip()
    return fields


def flags_of(fields: dict[str, str]) -> set[str]:
    """The CPU's feature words: x86's ``flags``, ARM's ``Features``."""
    return set((fields.get("flags") or fields.get("features") or "").split())


def read_cpuinfo(path: Path) -> tuple[set[str], str, int | None]:
    """(flags, vendor, family) from a /proc/cpuinfo-style file; empty when unreadable."""
    fields = cpuinfo_fields(path)
    family = fields.get("cpu family", "")
    return flags_of(fields), fields.get("vendor_id", ""), int(family) if family.isdigit() else None


@functools.lru_cache(maxsize=4)
def _detect(path: Path, machine: str) -> CpuIsa:
    flags, vendor, family = read_cpuinfo(path)
    return classify(flags, machine, vendor, family)


def this_cpu() -> CpuIsa:
    """This machine's class (read once per cpuinfo path)."""
    return _detect(Path(CPUINFO), platform.machine())


@dataclass(frozen=True)
class Clock:
    ghz: float | None
    source: str  # where it was read, as a report says it
    trusted: bool  # measured, or the kernel's maximum: fit for a ceiling (cpu MHz is neither)


# A busy loop perf counts the cycles of: long enough (about 0.2 s) that Python's start-up, whose
# kernel time the user-mode cycle counter does not see, weighs little.
_BUSY_LOOP = "n = 0\nfor i in range(4_000_000):\n    n += i"


def perf_clock_ghz(timeout: float = 30) -> float | None:
    """The clock a busy core runs at, from ``perf stat``: cycles over task-clock of a short
    Python loop. None where perf is not installed, not permitted, or the cycle counter is not
    exposed (most VMs)."""
    perf = shutil.which("perf")
    if perf is None:
        return None
    command = [perf, "stat", "-x,", "-e", "cycles:u,task-clock", "--"]
    try:
        done = subprocess.run(
            [*command, sys.executable, "-c", _BUSY_LOOP],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "LC_ALL": "C"},
        )
    except (OSError, subprocess.SubprocessError):
        return None
    counts = {}
    for line in done.stderr.splitlines():  # value,unit,event,...
        parts = line.split(",")
        if len(parts) >= 3:
            try:
                counts[parts[2].split(":")[0]] = float(parts[0])
            except ValueError:
                continue  # "<not supported>", "<not counted>"
    if done.returncode != 0 or not counts.get("cycles") or not counts.get("task-clock"):
        return None
    ghz = counts["cycles"] / (counts["task-clock"] * 1e6)  # task-clock is in milliseconds
    return ghz if 0.3 < ghz < 10 else None


def _cpufreq_ghz(name: str) -> float | None:
    try:
        return int((CPUFREQ / name).read_text()) / 1e6  # kHz
    except (OSError, ValueError):
        return None


def timed_clock_ghz(seconds: float = 0.05, tries: int = 5) -> float | None:
    """The clock a busy core runs at (turbo included), timed on a chain of dependent integer
    adds, one cycle each on every x86-64 and ARM64 core, compiled with the package
    (``_clock.c``, an optional extension: no machine code is written into memory at run time).
    The most of ``tries`` short runs (noise only slows a run). None where the extension was
    not built (no C compiler at install) or the processor is neither x86-64 nor ARM64."""
    if platform.machine().lower() not in ("x86_64", "amd64", "aarch64", "arm64"):
        return None
    try:
        from alexnet_deploy import _clock
    except ImportError:
        return None
    import time

    per_call = _clock.ADDS_PER_ITERATION
    _clock.add_chain(1000)  # warm
    start = time.perf_counter()
    _clock.add_chain(10**6)
    iterations = max(10**5, int(seconds / max((time.perf_counter() - start) / 10**6, 1e-12)))
    best = 0.0
    for _ in range(tries):
        start = time.perf_counter()
        if _clock.add_chain(iterations) != per_call * iterations:
            return None
        best = max(best, per_call * iterations / (time.perf_counter() - start))
    ghz = best / 1e9
    return ghz if 0.3 < ghz < 10 else None


def clock_ghz(use_perf: bool = True, use_timer: bool = True) -> Clock:
    """This machine's clock for a ceiling, and where it came from: timed on the compiled chain
    of dependent adds, else perf's cycle counter, else cpufreq (the larger of its maximum and
    current clock: some drivers leave boost out of the maximum), all trusted; else
    /proc/cpuinfo's ``cpu MHz``, not trusted (nominal in a VM)."""
    if use_timer and (timed := timed_clock_ghz()):
        return Clock(timed, "timed on a chain of dependent adds (compiled _clock extension)", True)
    if use_perf and (measured := perf_clock_ghz()):
        return Clock(measured, "measured by perf (cycles over task-clock)", True)
    cpufreq = [g for g in map(_cpufreq_ghz, ("cpuinfo_max_freq", "scaling_cur_freq")) if g]
    if cpufreq:
        return Clock(max(cpufreq), "read from cpufreq", True)
    try:
        mhz = float(cpuinfo_fields().get("cpu mhz", ""))
    except ValueError:
        return Clock(None, "no clock readable", False)
    return Clock(mhz / 1e3, "/proc/cpuinfo's cpu MHz, nominal in a VM", False)


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
