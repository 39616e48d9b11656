"""scripts/gpu-check's dry run on this machine: every step it would take on a GPU, each issue
#18 item covered, the budget said, nothing run or written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_dry_run_lists_every_gpu_step_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gpu-check"), "--dry-run"],
        capture_output=True, text=True, env={"OUT": str(out), "PATH": "/usr/bin:/bin"},
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = done.stdout
    for item in ("#1", "#2", "#3", "#4", "#5", "#6", "#7", "#8", "#10"):
        assert item in text, item
    for step in ("bench tensorrt", "bench ort-cuda", "bench ort-trt", "--legacy-int8",
                 "portable plan", "package triton", "gpu tests", "export --softmax"):  # fmt: skip
        assert step in text, step
    assert "--mode latency --mode throughput" in text
    assert "in a budget of 780 s" in text
    # without a GPU here, each GPU step says why it would be skipped
    assert "would skip here: no CUDA device visible to torch" in text
    assert not out.exists()
