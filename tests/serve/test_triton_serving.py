"""bench --triton end to end against a real Triton server (pytriton's tritonserver binary, on
loopback, CPU). The served model runs ONNX Runtime inside Triton's python backend; the binary
carries no onnxruntime backend, so the generated onnxruntime_onnx configs are schema-checked
only (tests/serve/test_package.py)."""

from __future__ import annotations

import json
import os
import socket
import sysconfig
import time

import numpy as np
import pytest

pytest.importorskip(
    "tritonclient.http",
    reason="tritonclient is not installed (pip install 'alexnet-deploy[triton]')",
)
pytest.importorskip(
    "pytriton", reason="nvidia-pytriton is not installed (it ships the tritonserver binary)"
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(digits):
    import onnxruntime as ort
    from pytriton.decorators import batch
    from pytriton.model_config import ModelConfig, Tensor
    from pytriton.triton import Triton, TritonConfig

    session = ort.InferenceSession(str(digits["onnx"]), providers=["CPUExecutionProvider"])

    @batch
    def infer(input):  # noqa: A002 - the tensor's name
        return {"logits": session.run(None, {"input": input})[0]}

    # Triton's python-backend stub links libpython3.11 dynamically and would pick the system's
    # (Debian: 3.11.2) while loading this interpreter's stdlib (3.11.7): point it at the
    # interpreter's own shared library so the two match.
    previous = os.environ.get("LD_LIBRARY_PATH")
    if sysconfig.get_config_var("Py_ENABLE_SHARED"):
        libdir = sysconfig.get_config_var("LIBDIR")
        os.environ["LD_LIBRARY_PATH"] = libdir + (":" + previous if previous else "")
    http_port = _free_port()
    config = TritonConfig(
        http_address="127.0.0.1",
        http_port=http_port,
        grpc_address="127.0.0.1",
        grpc_port=_free_port(),
        metrics_port=_free_port(),
    )
    triton = Triton(config=config)
    triton.bind(
        model_name="digits",
        infer_func=infer,
        inputs=[Tensor(name="input", dtype=np.float32, shape=(3, 32, 32))],
        outputs=[Tensor(name="logits", dtype=np.float32, shape=(10,))],
        config=ModelConfig(max_batch_size=16),
    )
    triton.run()
    try:
        yield f"http://127.0.0.1:{http_port}"
    finally:
        triton.stop()
        if previous is None:
            os.environ.pop("LD_LIBRARY_PATH", None)
        else:
            os.environ["LD_LIBRARY_PATH"] = previous


def test_served_logits_match_local_onnxruntime(server, digits):
    from alexnet_deploy.calib.fidelity import ort_logits
    from alexnet_deploy.serve.triton_client import connect, infer_callable

    served = connect(server, "digits")
    assert (
        served.input_name == "input"
        and served.image_shape == (3, 32, 32)
        and served.max_batch_size == 16
    )
    images = digits["heldout_images"][:8]
    remote = infer_callable(served)(images)
    local = ort_logits(digits["onnx"], "input", images, 8)
    np.testing.assert_allclose(remote, local, rtol=1e-5, atol=1e-5)


def test_bench_triton_writes_the_same_reports(server, digits, cli, tmp_path):
    result = cli(
        "bench",
        "--triton",
        server,
        "--triton-model",
        "digits",
        "--model",
        digits["onnx"],
        "--data",
        digits["heldout_dir"],
        "--batch",
        "1,4",
        "--mode",
        "latency",
        "--mode",
        "throughput",
        "--streams",
        "2",
        "--min-seconds",
        "0.2",
        "--max-seconds",
        "0.5",
        "--work-dir",
        tmp_path / "w",
        "--out",
        tmp_path / "r",
    )
    assert result.exit_code == 0, result.stderr
    assert "perf_analyzer -m digits -u 127.0.0.1:" in result.stdout
    report = json.loads((tmp_path / "r" / "bench-summary.json").read_text())
    rows = report["rows"]
    assert {r["backend"] for r in rows} == {"triton"} and len(rows) == 4
    assert all(r["status"] == "ok" and r["top1_agreement"] == 1.0 for r in rows)
    assert (tmp_path / "r" / "bench-samples.parquet").is_file()


def test_unreachable_server_fails_fast(cli, tmp_path):
    start = time.monotonic()
    result = cli(
        "bench",
        "--triton",
        f"http://127.0.0.1:{_free_port()}",
        "--triton-model",
        "x",
        "--work-dir",
        tmp_path,
    )
    assert result.exit_code == 1 and "cannot reach Triton" in result.stderr
    assert time.monotonic() - start < 15


def test_missing_model_is_named_with_what_is_served(server, cli, tmp_path):
    result = cli("bench", "--triton", server, "--triton-model", "resnet", "--work-dir", tmp_path)
    assert result.exit_code == 1 and "model 'resnet' is not ready" in result.stderr
    # pytriton's server restricts the repository index; the hint says so (or lists the models)
    assert "digits" in result.stderr or "would not list its models" in result.stderr


def test_bad_url(cli, tmp_path):
    result = cli(
        "bench", "--triton", "ftp://nowhere", "--triton-model", "x", "--work-dir", tmp_path
    )
    assert result.exit_code == 2 and "expected http://HOST:PORT" in result.stderr
