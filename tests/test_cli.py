"""The command line: each bad input gives a one-line error, a non-zero exit, no traceback and
no file; the good paths print what the user needs."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from tests.conftest import without_progress
from tests.models.test_weights import NotATensor


def _assert_user_error(result, code, message, *paths):
    assert result.exit_code == code, (result.stdout, result.stderr)
    first = without_progress(result.stderr).splitlines()[0]
    assert first.startswith("Error: ") and message in first, result.stderr
    assert "Traceback" not in result.stderr
    for path in paths:
        assert not path.exists(), f"{path} was written"


def test_summary_formats(cli):
    table = cli("summary", "--variant", "paper")
    assert table.exit_code == 0 and "96x55x55" in table.stdout and "60,965,224" in table.stdout
    rows = json.loads(cli("summary", "--format", "json").stdout)
    assert rows[-1] == {
        "layer": "total",
        "type": "",
        "output": "",
        "params": 61_100_840,
        "macs": 714_188_480,
    }
    csv = cli("summary", "--format", "csv").stdout.splitlines()
    assert csv[0] == "layer,type,output,params,macs" and csv[1].startswith("conv1,Conv2d,64x55x55")
    md = cli("summary", "--variant", "paper", "--format", "md").stdout
    assert md.startswith("| layer") and "| fc8 " in md


def test_doctor_lists_runtimes(cli):
    result = cli("doctor", "--format", "json")
    rows = {r["component"]: r for r in json.loads(result.stdout)}
    assert rows["onnxruntime"]["status"] == "ok"
    assert "CPUExecutionProvider" in rows["onnxruntime providers"]["detail"]
    assert "avx2=" in rows["cpu features"]["detail"]
    if rows["tensorrt"]["status"] != "ok":
        assert rows["tensorrt"]["detail"]  # says why


def test_missing_weights_file(cli, tmp_path):
    out = tmp_path / "new-dir" / "m.onnx"
    result = cli("export", "--weights", tmp_path / "missing.pth", "-o", out)
    _assert_user_error(result, 1, "weights file not found", out, out.parent)


def test_not_a_checkpoint(cli, tmp_path):
    bogus, out = tmp_path / "bogus.pth", tmp_path / "m.onnx"
    bogus.write_bytes(np.random.default_rng(0).bytes(1000))
    _assert_user_error(
        cli("export", "--weights", bogus, "-o", out), 1, "is not a PyTorch checkpoint", out
    )


def test_wrong_keys_or_shapes(cli, tmp_path):
    ckpt, out = tmp_path / "small.pth", tmp_path / "m.onnx"
    torch.save({"features.0.weight": torch.zeros(3, 3)}, ckpt)
    result = cli("export", "--weights", ckpt, "-o", out)
    _assert_user_error(result, 1, "does not fit the 'torchvision' variant", out)
    assert "features.0.bias" in result.stderr and "Hint:" in result.stderr


def test_pickled_object(cli, tmp_path):
    ckpt, out = tmp_path / "object.pth", tmp_path / "m.onnx"
    torch.save(NotATensor(), ckpt)
    _assert_user_error(
        cli("export", "--weights", ckpt, "-o", out), 1, "pickled Python objects", out
    )


def test_unknown_variant(cli, tmp_path):
    out = tmp_path / "m.onnx"
    result = cli("export", "--variant", "vgg16", "-o", out)
    assert result.exit_code == 2 and "vgg16" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists()


@pytest.mark.parametrize("opset", ["12", "99"])
def test_opset_out_of_range(cli, tmp_path, opset):
    out = tmp_path / "m.onnx"
    _assert_user_error(
        cli("export", "--opset", opset, "-o", out), 2, f"--opset must be >= 13 and <= 21, got {opset}", out
    )


def test_output_directory_not_writable(cli, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    out = blocker / "sub" / "m.onnx"
    _assert_user_error(cli("export", "-o", out), 1, "is a file, not a directory")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_output_directory_without_permission(cli, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    _assert_user_error(cli("export", "-o", locked / "m.onnx"), 1, "is not writable")


def test_existing_output_refused_and_kept(cli, tmp_path):
    out = tmp_path / "m.onnx"
    out.write_bytes(b"previous artifact")
    _assert_user_error(cli("export", "-o", out), 1, "already exists")
    assert out.read_bytes() == b"previous artifact"
    assert "--force" in cli("export", "-o", out).stderr


def test_failed_forced_export_keeps_existing_artifact(cli, tmp_path):
    out, ckpt = tmp_path / "m.onnx", tmp_path / "bad.pth"
    out.write_bytes(b"previous artifact")
    torch.save({"nope": torch.zeros(1)}, ckpt)
    result = cli("export", "--force", "--weights", ckpt, "-o", out)
    assert result.exit_code == 1
    assert out.read_bytes() == b"previous artifact"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pth", "m.onnx"]


def test_export_command_prints_validation(cli, tmp_path):
    out = tmp_path / "paper.onnx"
    result = cli("export", "--variant", "paper", "-o", out)
    assert result.exit_code == 0, result.stderr
    assert "untrained (seed 0)" in result.stdout and "max_abs_diff" in result.stdout
    assert out.exists() and (tmp_path / "paper.onnx.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["paper.onnx", "paper.onnx.json"]
