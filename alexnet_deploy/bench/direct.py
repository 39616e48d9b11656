"""The runtimes used directly, with their defaults and no alexnet-deploy code in the loop: the
rows the tool's engines must match or beat ("ort-direct", "openvino-direct"). What each computed
in is read back from it (engines/computed.py): OpenVINO's defaults compute an FP32 model in bf16
on a CPU with BF16, and its row says so ("fp32 model, ran bf16").

``tune`` also runs OpenVINO the way its documentation recommends for throughput
(:func:`openvino_queue`, :func:`measure_queue`): the model reshaped to one static batch,
compiled with the throughput hint and nothing else, and an asynchronous queue of the optimal
number of requests kept full, each request's input set once (OpenVINO's throughput sample)."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alexnet_deploy.bench.config import MeasureRules
from alexnet_deploy.bench.measure import Measurement, warm_up


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


@dataclass
class OpenVINOQueue:
    """OpenVINO compiled for one static batch with its throughput hint, and its asynchronous
    queue of the optimal number of requests (``AsyncInferQueue(compiled, 0)``)."""

    compiled: object  # openvino.CompiledModel
    queue: object  # openvino.AsyncInferQueue
    batch: int
    computed: object = None  # engines.computed.Computed, where read back

    @property
    def requests(self) -> int:
        """How many requests the throughput hint asked for (OPTIMAL_NUMBER_OF_INFER_REQUESTS)."""
        return len(self.queue)

    def infer(self, images: np.ndarray) -> np.ndarray:
        """The logits of one batch of the static size, on a request of its own, outside the
        timed loop (fidelity)."""
        return self.compiled.create_infer_request().infer({0: images})[0].copy()


@contextlib.contextmanager
def openvino_queue(artifact: Path, batch: int, read_back: bool = True):
    """Yield an :class:`OpenVINOQueue` of ``artifact`` reshaped to ``batch`` [B, C, H, W],
    compiled with PERFORMANCE_HINT=THROUGHPUT and nothing else set; with ``read_back``, what it
    computes in (engines/computed.py)."""
    import openvino as ov

    from alexnet_deploy.engines import computed

    core = ov.Core()
    model = core.read_model(str(artifact))
    shape = model.input(0).get_partial_shape()
    shape[0] = ov.Dimension(batch)
    model.reshape(shape)
    compiled = core.compile_model(model, "CPU", {"PERFORMANCE_HINT": "THROUGHPUT"})
    queue = ov.AsyncInferQueue(compiled, 0)  # 0: OpenVINO's optimal number of requests
    ran = computed.openvino_computed(compiled) if read_back else None
    try:
        yield OpenVINOQueue(compiled, queue, batch, ran)
    finally:
        queue.wait_all()  # no request left running when the queue goes


def openvino_optimal_requests(artifact: Path, batch: int) -> int:
    """The number of requests OpenVINO's throughput hint asks for on this machine for
    ``artifact`` at a static ``batch`` (OPTIMAL_NUMBER_OF_INFER_REQUESTS of the compiled model:
    what :func:`openvino_queue` will hold)."""
    with openvino_queue(artifact, batch, read_back=False) as compiled:
        return compiled.requests


def measure_queue(compiled: OpenVINOQueue, batch: np.ndarray, rules: MeasureRules) -> Measurement:
    """Keep every request of the queue busy, after warm-up, for at least min_seconds and
    min_iterations (capped at max_seconds), as measure.measure_throughput does with threads.
    Each request's input is set once (shared, not copied per call); a request's latency runs
    from its ``start_async`` (once a request is idle: the wait for one is not its latency) to
    its callback."""
    import openvino as ov

    queue, samples = compiled.queue, []
    for request in queue:
        request.set_input_tensor(ov.Tensor(batch, shared_memory=True))

    def done(request, started: int | None) -> None:
        if started is not None:  # None: a warm-up request
            samples.append(time.perf_counter_ns() - started)

    queue.set_callback(done)
    warm_up(lambda _: queue.start_async(userdata=None), batch, rules)
    queue.wait_all()
    min_ns, max_ns = int(rules.min_seconds * 1e9), int(rules.max_seconds * 1e9)
    begin = time.perf_counter_ns()
    while True:
        queue.get_idle_request_id()  # blocks until a request is free
        now = time.perf_counter_ns()
        elapsed = now - begin
        if elapsed >= max_ns or (elapsed >= min_ns and len(samples) >= rules.min_iterations):
            break
        queue.start_async(userdata=now)
    # why the loop stopped, as it stopped: the drain below (the requests in flight finishing)
    # is part of the wall time, not of the reason
    reason = "time cap" if elapsed >= max_ns else "minimums met"
    queue.wait_all()
    wall = (time.perf_counter_ns() - begin) / 1e9
    return Measurement(
        np.asarray(samples, dtype=np.int64),
        wall,
        len(samples),
        len(batch),
        reason,
        concurrency=len(queue),
    )
