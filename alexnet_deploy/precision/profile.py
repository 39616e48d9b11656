"""compare --profile: where the candidate's time goes, per layer, from the runtime's own
profiler, so one table shows where the error and where the time go.

The candidate runs as deployed (no tensor exposed, every optimization on): ONNX Runtime's
profiler (per-node kernel time, ``SessionOptions.enable_profiling``) or OpenVINO's performance
counters (``PERF_COUNT``, per executed node, with the kernel that ran). The runtimes rename the
nodes they fuse (ONNX Runtime appends ``_token_N``; OpenVINO appends ``/WithoutBiases`` and the
like), so a profiled node is traced back to the candidate's node of that name and from there to
the tensor it writes: the layer's row in compare's table. Quantize/dequantize and layout
conversions (Transpose, Reorder) have no layer: they are reported as overhead rows.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

QDQ_OPS = ("QuantizeLinear", "DequantizeLinear", "FakeQuantize", "PowerStatic", "Convert")
LAYOUT_OPS = ("Transpose", "Reorder")
OVERHEAD_QDQ = "(quantize / dequantize)"
OVERHEAD_LAYOUT = "(layout: transpose / reorder)"
OVERHEAD_OTHER = "(other)"


@dataclass
class Profile:
    runtime: str
    batch: int
    runs: int
    layers: dict[str, float] = field(default_factory=dict)  # tensor -> ms per batch
    kernels: dict[str, list[str]] = field(default_factory=dict)  # tensor -> kernels that ran
    overheads: dict[str, float] = field(default_factory=dict)  # overhead row -> ms per batch

    @property
    def total_ms(self) -> float:
        return sum(self.layers.values()) + sum(self.overheads.values())

    def as_dict(self) -> dict:
        return {
            "runtime": self.runtime,
            "batch": self.batch,
            "runs": self.runs,
            "layers_ms": self.layers,
            "kernels": self.kernels,
            "overheads_ms": self.overheads,
            "total_ms": self.total_ms,
        }


def _base_name(name: str) -> str:
    """A profiled node's name -> the graph node it came from."""
    name = re.sub(r"_token_\d+$", "", name)
    return name.split("/")[0]


def _attribute(profile: Profile, node: str, op: str, kernel: str, ms: float, writes, rows):
    tensor = writes.get(_base_name(node), "").removesuffix("_QuantizeLinear_Input")
    if tensor in rows and op not in QDQ_OPS + LAYOUT_OPS:
        profile.layers[tensor] = profile.layers.get(tensor, 0.0) + ms
        if kernel not in profile.kernels.setdefault(tensor, []):
            profile.kernels[tensor].append(kernel)
        return
    bucket = (
        OVERHEAD_QDQ
        if op in QDQ_OPS or "QuantizeLinear" in node or "DequantizeLinear" in node
        else OVERHEAD_LAYOUT
        if op in LAYOUT_OPS
        else OVERHEAD_OTHER
    )
    profile.overheads[bucket] = profile.overheads.get(bucket, 0.0) + ms


def profile_candidate(
    candidate_path: Path,
    rows: list[str],
    batch: np.ndarray,
    runtime: str,
    runs: int = 10,
    hint: str = "f32",
) -> Profile:
    """Per-layer time of ``candidate_path`` on ``batch`` (``rows``: compare's layer tensors);
    ``hint``: OpenVINO's inference precision (bf16: the FP32 model run in bf16)."""
    import onnx

    graph = onnx.load(str(candidate_path)).graph
    writes = {n.name: n.output[0] for n in graph.node}
    name = graph.input[0].name
    if runtime == "openvino":
        return _openvino(candidate_path, name, batch, runs, writes, set(rows), hint)
    return _ort(candidate_path, name, batch, runs, writes, set(rows))


def _ort(path, input_name, batch, runs, writes, rows) -> Profile:
    import onnxruntime as ort

    profile = Profile("ort", len(batch), runs)
    with tempfile.TemporaryDirectory(prefix="alexnet-profile-") as tmp:
        options = ort.SessionOptions()
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(tmp) / "ort")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        for _ in range(runs + 1):  # the first warms the session up: not counted below
            session.run(None, {input_name: batch})
        events = json.loads(Path(session.end_profiling()).read_text())
    per_node: dict[tuple[str, str], list[float]] = defaultdict(list)
    for event in events:
        if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time"):
            node = event["name"].removesuffix("_kernel_time")
            per_node[(node, event["args"].get("op_name", ""))].append(event["dur"] / 1000)
    for (node, op), times in per_node.items():
        ms = float(np.mean(times[-runs:]))  # the first run of the session warms it up
        _attribute(profile, node, op, op, ms, writes, rows)
    return profile


def _openvino(path, input_name, batch, runs, writes, rows, hint: str = "f32") -> Profile:
    import openvino as ov

    compiled = ov.Core().compile_model(
        str(path), "CPU", {"PERF_COUNT": True, "INFERENCE_PRECISION_HINT": hint}
    )
    request = compiled.create_infer_request()
    request.infer([batch])  # warm-up, not counted
    totals: dict[tuple[str, str, str], float] = defaultdict(float)
    for _ in range(runs):
        request.infer([batch])
        for info in request.get_profiling_info():
            if info.status == info.Status.EXECUTED:
                key = (info.node_name, info.node_type, info.exec_type)
                totals[key] += info.real_time.total_seconds() * 1000
    profile = Profile("openvino", len(batch), runs)
    for (node, op, kernel), ms in totals.items():
        _attribute(profile, node, op, kernel, ms / runs, writes, rows)
    return profile
