"""The runtimes used directly, with their defaults and no alexnet-deploy code in the loop: the
rows the tool's engines must match or beat ("ort-direct", "openvino-direct")."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def direct_infer(name: str, artifact: Path, workers: int = 1):
    """Yield a list of ``workers`` infer callables over one plain session / compiled model."""
    if name == "ort-direct":
        import onnxruntime as ort

        session = ort.InferenceSession(str(artifact), providers=["CPUExecutionProvider"])
        input_name = session.get_inputs()[0].name

        def run(batch: np.ndarray):
            return session.run(None, {input_name: batch})[0]

        yield [run] * workers
        del session
    elif name == "openvino-direct":
        import openvino as ov

        hint = "LATENCY" if workers == 1 else "THROUGHPUT"
        compiled = ov.Core().compile_model(str(artifact), "CPU", {"PERFORMANCE_HINT": hint})
        requests = [compiled.create_infer_request() for _ in range(workers)]

        def make(request):
            def run(batch: np.ndarray):
                return request.infer({0: batch})[0]

            return run

        yield [make(r) for r in requests]
        del requests, compiled
    else:
        raise ValueError(f"unknown direct backend {name!r}")


def available(name: str) -> bool:
    import importlib.util

    module = "onnxruntime" if name == "ort-direct" else "openvino"
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
