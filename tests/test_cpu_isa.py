"""CPU instruction-set classes from real /proc/cpuinfo flag sets of the machines this project
meets, and what follows from each class."""

from __future__ import annotations

import pytest

from alexnet_deploy import cpu_isa
from alexnet_deploy.cpu_isa import ISA_CLASSES, classify, read_cpuinfo

# Flag subsets as the kernel prints them on each machine (trimmed to the deciding ones plus
# some neighbours, so a classifier that looks at the wrong flag fails).
ICE_LAKE = "fpu sse4_2 avx f16c fma avx2 avx512f avx512dq avx512cd avx512bw avx512vl avx512_vnni avx512_vbmi2 gfni"
ZEN3 = "fpu sse4_2 avx f16c fma avx2 sha_ni vaes vpclmulqdq"
ZEN4 = "fpu fma avx2 avx512f avx512dq avx512ifma avx512cd avx512bw avx512vl avx512_bf16 avx512_vnni"
SKYLAKE_SP = "fpu fma avx2 avx512f avx512dq avx512cd avx512bw avx512vl"
ALDER_LAKE = "fpu fma avx2 avx_vnni"
SAPPHIRE_RAPIDS = f"{ICE_LAKE} amx_bf16 amx_tile amx_int8"
GRAVITON3 = "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp asimddp sve i8mm bf16"
CORTEX_A72 = "fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid"


@pytest.mark.parametrize(
    ("flags", "machine", "vendor", "family", "expected", "peak"),
    [
        (ICE_LAKE, "x86_64", "GenuineIntel", 6, "vnni", (64, 256)),
        (ZEN3, "x86_64", "AuthenticAMD", 25, "avx2", (32, 128)),
        (ZEN4, "x86_64", "AuthenticAMD", 25, "vnni", (32, 128)),
        (SKYLAKE_SP, "x86_64", "GenuineIntel", 6, "avx512", (64, 256)),
        (ALDER_LAKE, "x86_64", "GenuineIntel", 6, "vnni", (32, 128)),
        (SAPPHIRE_RAPIDS, "x86_64", "GenuineIntel", 6, "vnni", (64, 2048)),
        (GRAVITON3, "aarch64", "", None, "arm64", (32, 256)),
        (CORTEX_A72, "aarch64", "", None, "portable", (64, 256)),
        ("fpu sse4_2", "x86_64", "HygonGenuine", 24, "portable", (64, 256)),
        ("", "x86_64", "", None, "portable", (64, 256)),
        ("whatever", "riscv64", "", None, "portable", (64, 256)),
    ],
)
def test_classes_of_known_machines(flags, machine, vendor, family, expected, peak):
    isa = classify(set(flags.split()), machine, vendor, family)
    assert isa.name == expected and isa.name in ISA_CLASSES
    assert isa.peak_per_cycle() == peak
    assert isa.reason  # every class says why
    assert isa.int8_saturates == (expected in ("avx512", "avx2"))


def test_unknown_machine_says_why():
    isa = classify(set(), "x86_64")
    assert isa.name == "portable" and isa.reason == "no CPU flags could be read"
    assert "not x86 or ARM64" in classify({"a"}, "sparc64").reason


def test_read_cpuinfo_file(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text(
        f"processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nflags\t\t: {ZEN3}\n\n"
        f"processor\t: 1\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nflags\t\t: {ZEN3}\n"
    )
    flags, vendor, family = read_cpuinfo(info)
    assert "avx2" in flags and vendor == "AuthenticAMD" and family == 25
    assert read_cpuinfo(tmp_path / "missing") == (set(), "", None)


def test_this_machine_has_a_class_and_a_plausible_clock():
    assert cpu_isa.this_cpu().name in ISA_CLASSES
    clock = cpu_isa.clock_ghz()
    assert clock.source and (clock.ghz is None or 0.3 < clock.ghz < 10.0)


def test_the_clock_is_timed_on_the_compiled_add_chain_where_it_was_built():
    """The extension runs exactly 16 dependent adds per iteration (its result proves none was
    folded away), and the timed clock is the one a ceiling uses first; where no compiler built
    it, the clock falls back to perf, cpufreq or /proc/cpuinfo and says which."""
    try:
        from alexnet_deploy import _clock
    except ImportError:
        assert cpu_isa.timed_clock_ghz() is None
        assert "dependent adds" not in cpu_isa.clock_ghz(use_perf=False).source
        return
    assert _clock.add_chain(1000) == _clock.ADDS_PER_ITERATION * 1000
    ghz = cpu_isa.timed_clock_ghz()
    assert ghz is not None and 0.3 < ghz < 10
    clock = cpu_isa.clock_ghz(use_perf=False)
    assert clock.trusted and "dependent adds" in clock.source
