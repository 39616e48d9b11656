"""Where each row stands against the machine's limits.

FLOPs come from the model graph (alexnet_deploy.graph_summary, for any model: Conv taps on real
input, zero padding excluded, and Gemm/MatMul shapes after ONNX shape inference), weight
bytes from the artifact's initializers (so an INT8 artifact streams a quarter of FP32's bytes).

The compute ceilings are ceilings: cores x clock x operations per cycle of the widest FP32 FMA
and int8 dot product of this CPU's instruction-set class (alexnet_deploy.cpu_isa), with the clock
timed on the package's compiled chain of dependent adds, else read from perf's cycle counter or
cpufreq (cpu_isa.clock_ghz). Where none answers (the extension was not built, and a VM has only
/proc/cpuinfo's nominal clock while turbo runs above it) the ceiling is anchored on the best
kernel measured here (FP32: torch's oneDNN and ONNX Runtime's MLAS matrix multiply; INT8: ONNX
Runtime's MatMulInteger), the clock it implies at full use of its instructions: a lower bound of
the real peak, so % of peak may read high, and ``clock_source`` says so. The kernels are kept
beside the peaks either way. Copy bandwidth is measured, and the report says whether an
artifact's weights fit in the last-level cache (then the copy bandwidth is no floor). All probed
once per machine and cached.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from alexnet_deploy.bench.records import Roofline
from alexnet_deploy.fileio import write_json_atomic

_DTYPE_BYTES = {1: 4, 2: 1, 3: 1, 5: 2, 6: 4, 7: 8, 10: 2, 11: 8, 16: 2}


def macs_by_node(model_path: Path) -> dict[str, int]:
    """Multiply-accumulates of one image per node that multiplies (by node name), from the
    graph's own count (alexnet_deploy.graph_summary, for any model: Conv of any groups,
    ConvTranspose, Gemm, MatMul with weights or activations on both sides), counting the work
    no direct convolution can skip: Conv taps on real (not zero-padded) input. Counting the
    padding too overstates the work by about 8% for AlexNet, and a runtime that skips it then
    reads over 100% of peak (OpenVINO's FP32 engine did, on an AMD Zen 4)."""
    from alexnet_deploy.graph_summary import graph_layers

    return {x.name: x.real_macs for x in graph_layers(model_path) if x.real_macs}


def macs_per_image(model_path: Path) -> int:
    """Multiply-accumulates of one image (:func:`macs_by_node`, summed)."""
    return sum(macs_by_node(model_path).values())


def weight_bytes(model_path: Path) -> int:
    """Bytes of the artifact's initializers: what one inference streams from memory."""
    import onnx

    model = onnx.load(str(model_path))
    return sum(
        int(np.prod(i.dims)) * _DTYPE_BYTES.get(i.data_type, 4) for i in model.graph.initializer
    )


# In the cache key: bumped whenever the fields change (1: measured kernels as the "peak";
# 2: instruction-set peaks; 3: the 16-bit float peak; 4: the clock read, not timed, and
# anchored on the kernels where no trustworthy clock exists; 5: bf16's and fp16's own peaks;
# 6: INT8's and BF16's without AMX), so no stale probe is read back.
CEILINGS_VERSION = 6


@dataclass(frozen=True)
class Ceilings:
    fp32_gflops: float  # peak: cores x clock x FP32 FLOPs per cycle of this ISA class
    int8_gops: float  # peak: cores x clock x INT8 ops per cycle
    bandwidth_gbs: float
    threads: int
    fingerprint: str
    isa: str = ""  # the class and the per-cycle figures used
    cores: int = 0
    clock_ghz: float = 0.0
    clock_source: str = ""
    fp32_kernel_gflops: float = 0.0  # best measured kernel, shown beside the peak
    int8_kernel_gops: float = 0.0
    llc_bytes: int | None = None
    half_float_gflops: float = 0.0  # peak of the CPU's bf16/fp16 paths (0: it has none)
    bf16_gflops: float = 0.0  # each path's own peak (0: the CPU has no such path)
    fp16_gflops: float = 0.0
    # on a CPU with AMX, INT8's and BF16's peaks above are its tiles'; these its vector units'
    # (equal to them elsewhere; 0: a cache from before them)
    int8_no_amx_gops: float = 0.0
    bf16_no_amx_gflops: float = 0.0

    def peak_for(
        self, precision: str, runtime_picks_float: bool = False, amx: bool | None = None
    ) -> float:
        """The ceiling of a row computed in ``precision`` (what its runtime reports, where it
        does: engines/computed.py): INT8's, BF16's, FP16's or FP32's; where the runtime picks
        its own float precision and does not say, the fastest float path this CPU has. ``amx``:
        whether the runtime reports AMX kernels ran: False holds INT8 and BF16 rows to the
        vector units' rate; True and None (the runtime does not say) to the AMX rate where the
        CPU has AMX, the ceiling of what it may have run."""
        if amx is False:
            vector = {"int8": self.int8_no_amx_gops, "bf16": self.bf16_no_amx_gflops}
            if vector.get(precision):
                return vector[precision]
        if precision == "int8":
            return self.int8_gops
        half = {"bf16": self.bf16_gflops, "fp16": self.fp16_gflops}.get(precision)
        if half:
            return half
        if runtime_picks_float:
            return max(self.fp32_gflops, self.half_float_gflops)
        return self.fp32_gflops


def _best_of(fn, repeats: int = 5) -> float:
    fn()
    return min(_timed(fn) for _ in range(repeats))


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _fp32_gflops(n: int = 1024) -> float:
    """The faster of torch's (oneDNN/MKL) and ONNX Runtime's (MLAS) FP32 matrix multiply."""
    import onnxruntime as ort
    import torch
    from onnx import TensorProto, helper

    a, b = torch.randn(n, n), torch.randn(n, n)
    best = _best_of(lambda: torch.mm(a, b))
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])],
        "fp32mm",
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, [n, n]) for x in "ab"],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, [n, n])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {"a": a.numpy(), "b": b.numpy()}
    best = min(best, _best_of(lambda: session.run(None, feeds)))
    return 2 * n**3 / best / 1e9


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
    """What the probed ceilings depend on: the CPU, the cores this process may use and the
    threads the kernels run on, and the kernels' libraries (their versions)."""
    import onnxruntime
    import torch

    from alexnet_deploy.cpu_isa import usable_cores
    from alexnet_deploy.engines.sidecar import machine_fingerprint

    text = json.dumps(
        {
            **machine_fingerprint(),
            "ceilings": CEILINGS_VERSION,
            "cores": usable_cores(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__,
        },
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def llc_bytes() -> int | None:
    """The last-level cache's size (Linux sysfs), or None."""
    caches = Path("/sys/devices/system/cpu/cpu0/cache")
    best = None
    for index in sorted(caches.glob("index*")):
        try:
            level = int((index / "level").read_text())
            text = (index / "size").read_text().strip().upper()
        except (OSError, ValueError):
            continue
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        size = int(text.rstrip("KMG") or 0) * scale
        if best is None or level >= best[0]:
            best = (level, size)
    return None if best is None else best[1]


def compute_peaks(fp32_kernel: float, int8_kernel: float, clock=None) -> dict:
    """Peaks from the ISA class, cores and clock (``clock``: a cpu_isa.Clock, default this
    machine's). The measured kernels imply a clock (their rate at full use of the class's
    instructions); a trustworthy clock below it is raised to it, and without a trustworthy clock
    the ceiling is anchored on it, so no kernel ever exceeds its own ceiling."""
    from alexnet_deploy.cpu_isa import clock_ghz, this_cpu, usable_cores

    cpu = this_cpu()
    fp32_per_cycle, int8_per_cycle = cpu.peak_per_cycle()
    cores = usable_cores()
    clock = clock or clock_ghz()
    implied = max(fp32_kernel / (cores * fp32_per_cycle), int8_kernel / (cores * int8_per_cycle))
    ghz, source = clock.ghz or 0.0, clock.source
    untrusted = "the real peak may be higher, so % of peak may read high"
    if not clock.trusted and implied >= ghz:
        read = f"{ghz:.2f} GHz from {clock.source}" if ghz else clock.source
        source = f"anchored on the best measured kernel (no trustworthy clock: {read}; {untrusted})"
        ghz = implied
    elif not clock.trusted:
        source = f"{clock.source}, above the {implied:.2f} GHz the kernels imply; {untrusted}"
    elif implied > ghz:
        ghz, source = implied, f"implied by the measured kernels (above the {ghz:.2f} GHz {source})"
    paths = cpu.half_float_per_cycle()
    half = max(paths.values(), default=0)
    vector = cpu.without_amx()  # the same where the CPU has no AMX
    vector_bf16 = vector.half_float_per_cycle().get("bf16", fp32_per_cycle)
    return {
        "fp32_gflops": cores * ghz * fp32_per_cycle,
        "int8_gops": cores * ghz * int8_per_cycle,
        "half_float_gflops": cores * ghz * half,
        "bf16_gflops": cores * ghz * paths.get("bf16", 0),
        "fp16_gflops": cores * ghz * paths.get("fp16", 0),
        "int8_no_amx_gops": cores * ghz * vector.peak_per_cycle()[1],
        "bf16_no_amx_gflops": cores * ghz * (vector_bf16 if "bf16" in paths else 0),
        "isa": f"{cpu.name} ({cpu.peak_key()}: {fp32_per_cycle} FP32 FLOPs, "
        f"{int8_per_cycle} INT8 ops per core per cycle)",
        "cores": cores,
        "clock_ghz": ghz,
        "clock_source": source,
    }


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
    fp32_kernel, int8_kernel = _fp32_gflops(), _int8_gops()
    ceilings = Ceilings(
        **compute_peaks(fp32_kernel, int8_kernel),
        bandwidth_gbs=_bandwidth_gbs(),
        threads=torch.get_num_threads(),
        fingerprint=key,
        fp32_kernel_gflops=fp32_kernel,
        int8_kernel_gops=int8_kernel,
        llc_bytes=llc_bytes(),
    )
    finite = all(math.isfinite(v) for v in asdict(ceilings).values() if isinstance(v, float))
    probed = min(ceilings.fp32_gflops, ceilings.int8_gops, ceilings.bandwidth_gbs) > 0
    if finite and probed:  # a failed probe is never cached
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, asdict(ceilings))
    return ceilings


def roofline_of(
    images_per_s: float,
    inferences_per_s: float,
    macs: int,
    wbytes: int,
    batch: int,
    precision: str,
    ceilings: Ceilings,
    runtime_picks_float: bool = False,
    amx: bool | None = None,
) -> Roofline:
    """Achieved compute and weight traffic against the ceilings, and which bound applies
    (arithmetic intensity of one inference against the ridge point peak / bandwidth);
    ``amx``: the row's read-back (Ceilings.peak_for)."""
    gflops = images_per_s * 2 * macs / 1e9
    gbs = inferences_per_s * wbytes / 1e9
    peak = ceilings.peak_for(precision, runtime_picks_float, amx)
    intensity = 2 * macs * batch / max(wbytes, 1)
    ridge = peak / ceilings.bandwidth_gbs
    in_llc = ceilings.llc_bytes is not None and wbytes <= ceilings.llc_bytes
    return Roofline(
        gflops=gflops,
        pct_compute_peak=100 * gflops / peak,
        weight_gbs=gbs,
        pct_bandwidth=100 * gbs / ceilings.bandwidth_gbs,
        # weights that fit in the last-level cache are not streamed from memory each call
        bound="compute" if in_llc or intensity >= ridge else "memory",
        weights_in_llc=in_llc,
    )
