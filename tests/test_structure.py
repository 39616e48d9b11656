"""The package stays honest without optional parts: modules import, every --help runs fast."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest

import alexnet_deploy
from alexnet_deploy.cli import app
from tests.conftest import without_progress

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(alexnet_deploy.__path__, prefix="alexnet_deploy.")
    if m.name != "alexnet_deploy.__main__"
)
COMMANDS = sorted(c.name or c.callback.__name__ for c in app.registered_commands)


@pytest.mark.parametrize("module", MODULES)
def test_every_module_imports(module):
    importlib.import_module(module)


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_every_help_runs(cli, command):
    args = ["--help"] if command is None else [command, "--help"]
    result = cli(*args)
    assert result.exit_code == 0, result.stderr
    assert "Usage" in result.stdout


def test_help_does_not_import_heavy_modules():
    code = (
        "import sys; from alexnet_deploy.cli import run; rc = run(['--help']);"
        "heavy = [m for m in ('torch', 'onnx', 'onnxruntime', 'polars') if m in sys.modules];"
        "print('HEAVY', heavy); sys.exit(rc)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in out.stdout


def test_console_script_maps_user_errors_without_traceback(tmp_path):
    missing = tmp_path / "nope.pt"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "alexnet_deploy",
            "export",
            "--weights",
            str(missing),
            "-o",
            str(tmp_path / "m.onnx"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert without_progress(proc.stderr).startswith("Error: weights file not found")
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "m.onnx").exists()


def test_debug_flag_shows_traceback(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "alexnet_deploy",
            "--debug",
            "export",
            "--weights",
            str(tmp_path / "nope.pt"),
            "-o",
            str(tmp_path / "m.onnx"),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "Error: weights file not found" in proc.stderr


def test_the_artifact_naming_rule_lives_in_one_module():
    """Every stage asks alexnet_deploy/artifacts.py where a sibling artifact lives: no other
    module (nor script) builds 'STEM.fp16.onnx', 'STEM.int8-FORM.onnx' and the like by hand."""
    import re
    from pathlib import Path

    root = Path(alexnet_deploy.__file__).parent
    pattern = re.compile(r"""stem\}?\.(fp16|int8)|["']\.(fp16|int8)[.-]|int8-\{""")
    sources = [*root.rglob("*.py"), *(root.parent / "scripts").iterdir()]
    offenders = [
        f"{path.relative_to(root.parent)}:{number}"
        for path in sources
        if path.name != "artifacts.py" and path.is_file()
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert not offenders, offenders


def _import_graph() -> dict[str, set[str]]:
    """module -> the package's modules it imports, at the top or inside functions."""
    import ast
    from pathlib import Path

    root = Path(alexnet_deploy.__file__).parent
    names = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph: dict[str, set[str]] = {}
    for module, path in names.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                base = node.module
                candidates = [base, *(f"{base}.{a.name}" for a in node.names)]
            elif isinstance(node, ast.Import):
                candidates = [a.name for a in node.names]
            else:
                continue
            targets |= {c for c in candidates if c in names and c != module}
        graph[module] = targets - {"alexnet_deploy"}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycles_between_modules():
    """Lazy imports included: a cycle hidden inside a function is still a cycle."""
    assert _cycle(_import_graph()) is None, " -> ".join(_cycle(_import_graph()))


def test_no_import_cycles_between_stages():
    """Stages (sub-packages and top-level modules) form a layered graph: bench does not take
    its statistics from gate, nor the artifact reader from the exporter."""
    stage = lambda m: ".".join(m.split(".")[:2])  # noqa: E731
    graph: dict[str, set[str]] = {}
    for module, targets in _import_graph().items():
        if module.endswith(".cli") or module.endswith("__main__"):
            continue  # the CLI sits on top of everything by design
        graph.setdefault(stage(module), set()).update(
            stage(t) for t in targets if stage(t) != stage(module)
        )
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_stages_are_leaves_under_the_orchestration_layer():
    """Only workflow.py (and the CLI and the Python API over it) chains stages: bench and gate
    never export, calibrate or re-bench on their own, and nothing below them imports the
    workflow."""
    graph = _import_graph()
    making = {"alexnet_deploy.exporter.pipeline", "alexnet_deploy.calib.pipeline"}
    for module, targets in graph.items():
        if module.startswith(("alexnet_deploy.bench", "alexnet_deploy.gate")):
            assert not targets & making, (module, targets & making)
            assert not any(t.startswith("alexnet_deploy.gate") for t in targets) or (
                module.startswith("alexnet_deploy.gate")
            ), module
        above = ("alexnet_deploy.cli", "alexnet_deploy.workflow", "alexnet_deploy.api")
        if not module.startswith(above):
            assert "alexnet_deploy.workflow" not in targets, module


def test_the_work_directory_layout_lives_in_one_module():
    """WorkDir (artifacts.py) says where exports, engines, reports and caches go: nothing else
    joins 'engines', 'reports', 'models' or 'tuned.json' onto a work directory by hand."""
    import re
    from pathlib import Path

    root = Path(alexnet_deploy.__file__).parent
    pattern = re.compile(r"""/ ["'](engines|reports|models|tuned\.json|\.cache)["']""")
    offenders = [
        f"{path.relative_to(root.parent)}:{number}"
        for path in root.rglob("*.py")
        if path.name != "artifacts.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert not offenders, offenders


def test_no_module_over_400_lines():
    """Small modules with one job each (issue #15): a module past 400 lines is split."""
    from pathlib import Path

    root = Path(alexnet_deploy.__file__).parent
    long = {
        str(p.relative_to(root)): n
        for p in root.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 400
    }
    assert not long, long
