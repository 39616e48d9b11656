"""Systems code kept small and honest (issue #24): no machine code written into memory and run,
one /proc/cpuinfo reader, a clock that says where it came from and ceilings anchored on the
measured kernels where it cannot be trusted, libraries for JUnit and Mann-Whitney U, the gate's
history table through render.py, and a declared Python minimum that is the one the code needs."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

import alexnet_deploy
from alexnet_deploy import cpu_isa

ROOT = Path(alexnet_deploy.__file__).parent
REPO = ROOT.parent


def _sources() -> list[Path]:
    scripts = [p for p in (REPO / "scripts").iterdir() if p.is_file()]
    return [*ROOT.rglob("*.py"), *scripts]


def test_nothing_writes_machine_code_into_memory_and_runs_it():
    """Writable-and-executable pages are refused by hardened kernels and SELinux execmem."""
    pattern = re.compile(r"PROT_EXEC|CFUNCTYPE|mmap\.mmap\(")
    offenders = [
        f"{path.relative_to(REPO)}:{number}"
        for path in _sources()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert not offenders, offenders


def test_one_module_reads_proc_cpuinfo():
    readers = sorted(
        str(path.relative_to(REPO))
        for path in ROOT.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Constant) and node.value == "/proc/cpuinfo"
    )
    assert readers == ["alexnet_deploy/cpu_isa.py"]


@pytest.fixture
def fake_machine(tmp_path, monkeypatch):
    """A cpuinfo file and a cpufreq folder of our own, through the module attributes."""
    info = tmp_path / "cpuinfo"
    info.write_text(
        "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\n"
        "model name\t: Test CPU @ 2.50GHz\ncpu MHz\t\t: 2500.000\n"
        "flags\t\t: fpu fma avx2 avx512f avx512bw avx512_vnni\npower management:\n\n"
        "processor\t: 1\nmodel name\t: Another\ncpu MHz\t\t: 1200.000\nflags\t\t: fpu\n"
    )
    cpufreq = tmp_path / "cpufreq"
    monkeypatch.setattr(cpu_isa, "CPUINFO", info)
    monkeypatch.setattr(cpu_isa, "CPUFREQ", cpufreq)
    return cpufreq


def test_sysinfo_and_the_clock_read_cpuinfo_through_the_one_reader(fake_machine):
    from alexnet_deploy.sysinfo import cpu_info

    info = cpu_info()
    assert info["model"] == "Test CPU @ 2.50GHz"  # the first processor's
    assert info["features"]["avx512"] and info["features"]["vnni"] and not info["features"]["amx"]
    clock = cpu_isa.clock_ghz(use_perf=False, use_timer=False)
    assert clock.ghz == pytest.approx(2.5) and not clock.trusted
    assert "cpu MHz" in clock.source


def test_cpufreq_is_trusted_and_its_larger_figure_taken(fake_machine):
    fake_machine.mkdir()
    (fake_machine / "cpuinfo_max_freq").write_text("3000000\n")  # kHz
    (fake_machine / "scaling_cur_freq").write_text("3400000\n")  # boost past the listed maximum
    clock = cpu_isa.clock_ghz(use_perf=False, use_timer=False)
    assert clock.ghz == pytest.approx(3.4) and clock.trusted and "cpufreq" in clock.source


def test_no_clock_at_all(fake_machine):
    cpu_isa.CPUINFO.write_text("processor\t: 0\n")
    clock = cpu_isa.clock_ghz(use_perf=False, use_timer=False)
    assert clock.ghz is None and not clock.trusted


@pytest.mark.parametrize(
    ("clock", "factor", "expected"),
    [
        # no trustworthy clock, kernels faster than it allows: anchored on them, and said
        (cpu_isa.Clock(1.0, "/proc/cpuinfo's cpu MHz", False), 1.0, "anchored on the best"),
        (cpu_isa.Clock(None, "no clock readable", False), 1.0, "anchored on the best"),
        # no trustworthy clock but above the kernels: kept, and said that % may read high
        (cpu_isa.Clock(50.0, "/proc/cpuinfo's cpu MHz", False), 50.0, "may read high"),
        # a trusted clock the kernels outrun is raised; one above them is kept as it is
        (cpu_isa.Clock(1.0, "read from cpufreq", True), 1.0, "implied by the measured kernels"),
        (cpu_isa.Clock(50.0, "read from cpufreq", True), 50.0, "read from cpufreq"),
    ],
)
def test_ceilings_never_below_the_measured_kernels(clock, factor, expected):
    from alexnet_deploy.bench.roofline import compute_peaks

    cores = cpu_isa.usable_cores()
    fp32_cycle, int8_cycle = cpu_isa.this_cpu().peak_per_cycle()
    implied = 3.0  # GHz: what the FP32 kernel below ran at on full use of its instructions
    fp32_kernel, int8_kernel = cores * implied * fp32_cycle, cores * 2.0 * int8_cycle
    peaks = compute_peaks(fp32_kernel, int8_kernel, clock)
    assert peaks["clock_ghz"] == pytest.approx(max(implied, factor))
    assert peaks["fp32_gflops"] >= fp32_kernel and peaks["int8_gops"] >= int8_kernel
    assert expected in peaks["clock_source"]
    if not clock.trusted:
        assert "may read high" in peaks["clock_source"]


def _result():
    from alexnet_deploy.gate.compare import INCONCLUSIVE, REGRESSED, UNCHANGED, GateResult, Verdict

    return GateResult(
        [
            Verdict("ort fp32 b1 latency", "p50", REGRESSED, change=0.5, note='50% "worse" & <◀>'),
            Verdict("ort int8 b1 latency", "p50", INCONCLUSIVE, note="vary too much"),
            Verdict("ort int8 b1 latency", "p99", UNCHANGED),
        ],
        mode="history",
    )


def test_junit_counts_and_escapes_through_the_library():
    from alexnet_deploy.gate.output import junit

    text = junit(_result())
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>\n')
    suite = ET.fromstring(text.encode())
    assert suite.tag == "testsuite"
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    assert suite.find("properties/property[@name='mode']").get("value") == "history"
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    failure = cases["ort fp32 b1 latency p50"].find("failure")
    assert failure.get("message") == '50% "worse" & <◀>' and failure.text.startswith("change ")
    assert cases["ort int8 b1 latency p50"].find("skipped").get("message") == "vary too much"
    assert list(cases["ort int8 b1 latency p99"]) == []


def test_history_table_is_render_pys_markdown():
    from alexnet_deploy.gate.history import HistoryView

    view = HistoryView(["run1", "run2", "current"], {"cfg a": [1.0, None, 2.0], "b": [1, 1.1, 1]})
    lines = view.as_markdown().splitlines()
    assert lines[0] == "### History: p50 (ms) per run, oldest first"
    table = [line for line in lines if line.startswith("|")]
    assert [c.strip() for c in table[0].strip("|").split("|")] == ["run", "cfg a", "b"]
    assert set(table[1]) <= set("|-: ")  # the separator row
    rows = {r.split("|")[1].strip(): [c.strip() for c in r.split("|")[2:-1]] for r in table[2:]}
    # 'cfg a' has no two runs in a row, so no step; 'b' steps most into run2
    assert rows == {
        "run1": ["1.000", "1.000"],
        "run2": ["-", "1.100 ◀ +10.0%"],
        "current": ["2.000", "1.000"],
    }


def test_mann_whitney_is_exact_on_small_samples_without_ties():
    """scipy's exact distribution: all three of one side below the other is 2 of 20 orderings
    (the hand-written normal approximation said 0.081)."""
    from alexnet_deploy.gate.significance import mann_whitney_p

    assert mann_whitney_p([1.0, 2.0, 3.0], [4.0, 5.0, 6.0]) == pytest.approx(0.1)
    assert mann_whitney_p([1.0] * 20, [1.0] * 20) == pytest.approx(1.0)


def _imports(module: str) -> list[str]:
    return [
        str(path.relative_to(REPO))
        for path in ROOT.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if (isinstance(node, ast.Import) and any(a.name == module for a in node.names))
        or (isinstance(node, ast.ImportFrom) and node.module == module)
    ]


def test_the_declared_python_is_the_one_the_code_needs():
    """pyproject's requires-python is what the code needs (tomllib: 3.11), what ruff targets,
    what CI installs and what the README says; this interpreter meets it."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    spec = project["project"]["requires-python"]
    match = re.fullmatch(r">=\s*(\d+)\.(\d+)", spec.strip())
    assert match, spec
    declared = (int(match[1]), int(match[2]))
    assert sys.version_info[:2] >= declared
    if _imports("tomllib"):  # new in 3.11
        assert declared >= (3, 11), _imports("tomllib")
    assert declared == (3, 11)  # torch 2.13.0's CPU wheel used here exists only for 3.11
    assert project["tool"]["ruff"]["target-version"] == f"py{declared[0]}{declared[1]}"
    assert f"python{declared[0]}.{declared[1]} -m venv" in (REPO / ".ci" / "run").read_text()
    assert f"Python {declared[0]}.{declared[1]}+" in (REPO / "README.md").read_text()
