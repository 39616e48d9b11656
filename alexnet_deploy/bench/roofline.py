"""Where each row stands against the machine's limits.

FLOPs come from the model graph (Conv and Gemm/MatMul shapes after ONNX shape inference), weight
bytes from the artifact's initializers (so an INT8 artifact streams a quarter of FP32's bytes).
The ceilings are measured here, once per machine and cached: FP32 matrix multiply (torch),
INT8 matrix multiply (ONNX Runtime's MatMulInteger, the VNNI path), and copy bandwidth.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from alexnet_deploy.fileio import write_json_atomic

_DTYPE_BYTES = {1: 4, 2: 1, 3: 1, 5: 2, 6: 4, 7: 8, 10: 2, 11: 8, 16: 2}


def macs_per_image(model_path: Path) -> int:
    """Multiply-accumulates of one image: sum over Conv and Gemm/MatMul nodes."""
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load(str(model_path)))
    graph = model.graph
    inits = {i.name: list(i.dims) for i in graph.initializer}
    shapes = {
        v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
        for v in [*graph.value_info, *graph.output]
    }
    total = 0
    for node in graph.node:
        if node.op_type == "Conv" and node.input[1] in inits and node.output[0] in shapes:
            cout, cin_per_group, kh, kw = inits[node.input[1]]
            _, _, h, w = shapes[node.output[0]]
            total += cout * h * w * cin_per_group * kh * kw
        elif node.op_type in ("Gemm", "MatMul") and node.input[1] in inits:
            rows, cols = inits[node.input[1]]
            total += rows * cols
    return total


def weight_bytes(model_path: Path) -> int:
    """Bytes of the artifact's initializers: what one inference streams from memory."""
    import onnx

    model = onnx.load(str(model_path))
    return sum(
        int(np.prod(i.dims)) * _DTYPE_BYTES.get(i.data_type, 4) for i in model.graph.initializer
    )


@dataclass(frozen=True)
class Ceilings:
    fp32_gflops: float
    int8_gops: float
    bandwidth_gbs: float
    threads: int
    fingerprint: str

    def peak_for(self, precision: str) -> float:
        return self.int8_gops if precision == "int8" else self.fp32_gflops


def _best_of(fn, repeats: int = 5) -> float:
    fn()
    return min(_timed(fn) for _ in range(repeats))


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _fp32_gflops(n: int = 1024) -> float:
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    seconds = _best_of(lambda: torch.mm(a, b))
    return 2 * n**3 / seconds / 1e9


def _int8_gops(n: int = 1024) -> float:
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["c"])],
        "int8mm",
        [
            helper.make_tensor_value_info("a", TensorProto.UINT8, [n, n]),
            helper.make_tensor_value_info("b", TensorProto.INT8, [n, n]),
        ],
        [helper.make_tensor_value_info("c", TensorProto.INT32, [n, n])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {
        "a": rng.integers(0, 255, (n, n), dtype=np.uint8),
        "b": rng.integers(-127, 127, (n, n), dtype=np.int8),
    }
    seconds = _best_of(lambda: session.run(None, feeds))
    return 2 * n**3 / seconds / 1e9


def _bandwidth_gbs(mib: int = 256) -> float:
    src = np.ones(mib << 18, dtype=np.float32)  # mib MiB
    dst = np.empty_like(src)
    seconds = _best_of(lambda: np.copyto(dst, src))
    return 2 * src.nbytes / seconds / 1e9  # read + write


def machine_key() -> str:
    from alexnet_deploy.engines.sidecar import machine_fingerprint

    return hashlib.sha256(json.dumps(machine_fingerprint(), sort_keys=True).encode()).hexdigest()[
        :12
    ]


def measure_ceilings(cache_dir: Path, refresh: bool = False) -> Ceilings:
    """Probe (about 5 s) or read this machine's cached ceilings."""
    import torch

    key = machine_key()
    path = Path(cache_dir) / f"machine-ceilings-{key}.json"
    if path.is_file() and not refresh:
        try:
            return Ceilings(**json.loads(path.read_text()))
        except (ValueError, TypeError):
            pass  # unreadable cache: probe again
    ceilings = Ceilings(
        fp32_gflops=_fp32_gflops(),
        int8_gops=_int8_gops(),
        bandwidth_gbs=_bandwidth_gbs(),
        threads=torch.get_num_threads(),
        fingerprint=key,
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, asdict(ceilings))
    return ceilings


def roofline_columns(
    images_per_s: float,
    inferences_per_s: float,
    macs: int,
    wbytes: int,
    batch: int,
    precision: str,
    ceilings: Ceilings,
) -> dict:
    """Achieved compute and weight traffic against the ceilings, and which bound applies
    (arithmetic intensity of one inference against the ridge point peak / bandwidth)."""
    gflops = images_per_s * 2 * macs / 1e9
    gbs = inferences_per_s * wbytes / 1e9
    peak = ceilings.peak_for(precision)
    intensity = 2 * macs * batch / max(wbytes, 1)
    ridge = peak / ceilings.bandwidth_gbs
    return {
        "gflops": gflops,
        "pct_compute_peak": 100 * gflops / peak,
        "weight_gbs": gbs,
        "pct_bandwidth": 100 * gbs / ceilings.bandwidth_gbs,
        "bound": "memory" if intensity < ridge else "compute",
    }
