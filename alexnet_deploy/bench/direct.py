"""The runtimes used directly, with their defaults and no alexnet-deploy code in the loop: the
rows the tool's engines must match or beat ("ort-direct", "openvino-direct"). What each computed
in is read back from it (engines/computed.py): OpenVINO's defaults compute an FP32 model in bf16
on a CPU with BF16, and its row says so ("fp32 model, ran bf16")."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def direct_infer(name: str, artifact: Path, workers: int = 1, read_back: bool = True):
    """Yield ``workers`` infer callables over one plain session / compiled model, and, with
    ``read_back``, what it computes in (engines/computed.py's ``Computed``; else None)."""
    from alexnet_deploy.engines import computed

    if name == "ort-direct":
        import tempfile

        import onnxruntime as ort

        with tempfile.TemporaryDirectory(prefix="ort-direct-") as scratch:
            options = ort.SessionOptions()  # ONNX Runtime's defaults (+ the graph it runs)
            graph = Path(scratch) / "optimized.onnx"
            if read_back:
                options.optimized_model_filepath = str(graph)
                options.log_severity_level = 3  # its warning: a saved graph is machine-specific
            session = ort.InferenceSession(str(artifact), options, ["CPUExecutionProvider"])
            providers = session.get_providers()
            ran = computed.onnx_graph_computed(graph, providers) if read_back else None
        input_name = session.get_inputs()[0].name

        def run(batch: np.ndarray):
            return session.run(None, {input_name: batch})[0]

        yield [run] * workers, ran
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

        ran = computed.openvino_computed(compiled) if read_back else None
        yield [make(r) for r in requests], ran
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
