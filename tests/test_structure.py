"""The package stays honest without optional parts: modules import, every --help runs fast."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest

import alexnet_deploy
from alexnet_deploy.cli import app

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
    assert proc.stderr.startswith("Error: weights file not found")
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
