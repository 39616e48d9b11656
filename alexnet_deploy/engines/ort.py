"""ONNX Runtime: the embedded default. CPU execution provider by default; the CUDA provider
when onnxruntime-gpu and a GPU are present. The engine is ONNX Runtime's optimized model
(saved once at build, loaded with graph optimizations off: no re-optimizing at each start).
A static batch (``--static-batch``) is ONNX Runtime's free-dimension override of the input's
named batch axis, so the session plans every buffer for that one shape (the saved optimized
model keeps it: its input dim becomes the number)."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np

from alexnet_deploy import constants as C
from alexnet_deploy.engines.base import Backend, Capability, Engine, Runner, runtime_error
from alexnet_deploy.engines.computed import Computed, onnx_graph_computed, provider_computed
from alexnet_deploy.engines.options import BuildOptions
from alexnet_deploy.engines.sidecar import Sidecar
from alexnet_deploy.errors import AlexnetDeployError
from alexnet_deploy.fileio import atomic_path

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT_EP = "TensorrtExecutionProvider"
NAMES = {CPU: "ort", CUDA: "ort-cuda", TENSORRT_EP: "ort-trt"}
# checked in onnxruntime 1.32: the BF16 artifact fails to load ("Could not find an
# implementation for Conv(22)"; tests/test_bf16.py); microsoft/onnxruntime#28768 lists the CPU
# provider's bfloat16 kernels: Cast and byte movers, no arithmetic
CPU_HAS_NO_BF16 = (
    "ONNX Runtime's CPU provider has no bfloat16 Conv/Gemm kernels (a BF16 model fails to load), "
    "so it would not compute bf16 at all"
)


def _provider_name(provider) -> str:
    return provider[0] if isinstance(provider, tuple) else provider


def trt_ep_options(precision: str, input_name: str, image_shape, profile) -> dict:
    """What the TensorRT provider must be told beyond its defaults:

    * the precision the artifact carries: FP16 tensors need ``trt_fp16_enable``, BF16 ones
      ``trt_bf16_enable``; Q/DQ INT8
      (the symmetric ``tensorrt`` form) needs ``trt_int8_enable`` so TensorRT may run the
      explicit quantization in INT8 (no calibration table: the scales are in the file);
    * an optimization profile for the dynamic batch axis (``profile``: min, opt, max batch),
      or the provider builds an engine at the first run and again for each new shape."""
    dims = "x".join(str(d) for d in image_shape)
    shapes = {
        f"trt_profile_{which}_shapes": f"{input_name}:{batch}x{dims}"
        for which, batch in zip(("min", "opt", "max"), profile, strict=True)
    }
    return {
        **shapes,
        **({"trt_fp16_enable": True} if precision in ("fp16", "int8") else {}),
        **({"trt_int8_enable": True} if precision == "int8" else {}),
        **({"trt_bf16_enable": True} if precision == "bf16" else {}),
    }


def nodes_by_provider(model: Path, providers: list, batch: np.ndarray) -> dict[str, list[str]]:
    """Which execution provider ran each node: one run with ONNX Runtime's profiler on, its
    node events read back (``args.provider``). A session can report the TensorRT provider first
    while some nodes fell back to CUDA (or the CPU); this says which."""
    import json
    import tempfile

    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="ort-nodes-") as scratch:
        options = ort.SessionOptions()
        options.log_severity_level = 3
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(scratch) / "nodes")
        session = ort.InferenceSession(str(model), options, providers=providers)
        session.run(None, {session.get_inputs()[0].name: batch})
        events = json.loads(Path(session.end_profiling()).read_text())
    found: dict[str, set[str]] = {}
    for event in events:
        args = event.get("args", {})
        if event.get("cat") == "Node" and "provider" in args:
            name = event.get("name", "").removesuffix("_kernel_time")
            found.setdefault(args["provider"], set()).add(f"{name} ({args.get('op_name', '?')})")
    return {provider: sorted(nodes) for provider, nodes in sorted(found.items())}


def _session_options(
    threads: int | None,
    optimize: bool,
    save_to: Path | None = None,
    knobs: dict | None = None,
    static: tuple[str, int] | None = None,
):
    """``static``: (the input's batch dimension name, the batch) to fix it at."""
    import onnxruntime as ort

    knobs = knobs or {}
    so = ort.SessionOptions()
    if static is not None:
        so.add_free_dimension_override_by_name(*static)
    if knobs.get("spinning") is not None:
        so.add_session_config_entry(
            "session.intra_op.allow_spinning", "1" if knobs["spinning"] else "0"
        )
    if knobs.get("mem_arena") is not None:
        so.enable_cpu_mem_arena = bool(knobs["mem_arena"])
    so.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if optimize
        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    if threads is not None:
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
    so.log_severity_level = 3
    if save_to is not None:
        so.optimized_model_filepath = str(save_to)
    return so


def batch_dim(info) -> str:
    """The name of ``info``'s batch axis, which the free-dimension override takes; an unnamed
    axis is refused (ONNX Runtime would silently keep it dynamic)."""
    dim = info.input.dims[0]
    if isinstance(dim, str) and dim:
        return dim
    raise AlexnetDeployError(
        f"{info.path}: the batch axis of input {info.input.name!r} has no name, and ONNX "
        "Runtime fixes a static batch by the axis's name",
        hint=f"'alexnet-deploy import {info.path}' names it 'batch'; or drop --static-batch",
    )


def create_session(path: Path, providers: list[str], so, static_batch: int | None = None):
    """An InferenceSession that really uses ``providers[0]``: onnxruntime-gpu lists CUDA even
    without a GPU and silently falls back to the CPU, so the fallback is an error here. With
    ``static_batch``, the session's input must have taken that batch (its override applied)."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), sess_options=so, providers=providers)
    except Exception as err:  # ORT raises its own Fail/InvalidGraph/... types
        raise runtime_error("ONNX Runtime", "load", path, err) from None
    wanted = _provider_name(providers[0])
    if session.get_providers()[0] != wanted:
        raise AlexnetDeployError(
            f"ONNX Runtime did not use {wanted} (it fell back to {session.get_providers()})",
            hint="check the GPU driver and that onnxruntime-gpu, not onnxruntime, is installed",
        )
    shape = session.get_inputs()[0].shape
    if static_batch is not None and shape[0] != static_batch:
        raise AlexnetDeployError(
            f"ONNX Runtime kept the batch of {path} at {shape[0]!r}, not the static batch "
            f"{static_batch} asked for",
            hint="drop --static-batch for this model",
        )
    return session


class OrtBackend(Backend):
    name = "ort"
    precisions = ("fp32", "fp16", "int8")
    knobs = ("spinning", "mem_arena")
    quantizers = ("qdq", "nncf")

    def __init__(self, provider: str = CPU) -> None:
        self.provider = provider
        self.name = NAMES[provider]
        if provider == CPU:
            self.refuses = {"bf16": CPU_HAS_NO_BF16}
        else:  # a GPU provider takes the BF16 artifact (calib/bf16.py)
            self.precisions = ("fp32", "fp16", "bf16", "int8")

    def capability(self) -> Capability:
        if importlib.util.find_spec("onnxruntime") is None:
            return Capability(False, "onnxruntime is not installed", extra="dev")
        import onnxruntime as ort

        if self.provider not in ort.get_available_providers():
            return Capability(
                False, f"{self.provider} is not in this onnxruntime build", ort.__version__, "gpu"
            )
        if self.provider != CPU:
            from alexnet_deploy.sysinfo import gpu_info

            if not gpu_info():
                return Capability(
                    False,
                    "onnxruntime-gpu is installed but no NVIDIA GPU was found",
                    ort.__version__,
                )
        return Capability(True, version=ort.__version__)

    def _providers(self, engine_dir: Path | None = None, trt: dict | None = None) -> list:
        """The provider list; the TensorRT EP keeps its engine and timing caches under the
        engine directory (the timing cache is shared by every build in the work directory) and
        takes ``trt`` (from :func:`trt_ep_options`)."""
        if self.provider == CPU:
            return [CPU]
        if self.provider == CUDA:
            return [CUDA, CPU]
        options = {
            "trt_engine_cache_enable": True,
            "trt_engine_cache_path": str(engine_dir / "trt-engine-cache") if engine_dir else "",
            "trt_timing_cache_enable": True,
            "trt_timing_cache_path": str(engine_dir.parent) if engine_dir else "",
            "trt_max_workspace_size": C.TRT_WORKSPACE_MB << 20,
            **(trt or {}),
        }
        return [(TENSORRT_EP, options), CUDA, CPU]

    def build(self, artifact: Path, options: BuildOptions, out_dir: Path) -> Engine:
        import onnxruntime as ort

        from alexnet_deploy.onnx_model import read_artifact

        info = read_artifact(artifact)
        start = time.perf_counter()
        static = None if options.static_batch is None else (batch_dim(info), options.static_batch)
        trt = None  # the TensorRT provider's options, recorded for the runner
        placed: dict[str, list[str]] = {}
        fallback: dict[str, list[str]] = {}
        if self.provider == CPU:
            engine_path = out_dir / "model.ort.onnx"
            with atomic_path(engine_path) as tmp:
                session = create_session(
                    artifact,
                    self._providers(),
                    _session_options(options.threads, True, tmp, static=static),
                    options.static_batch,
                )
                del session
        else:
            # GPU providers compile when the session is created and first run, and cannot save
            # the compiled graph: the engine is the artifact (plus, for the TensorRT EP, its
            # engine cache), warmed now at the profile's opt batch so build time is the real one
            from alexnet_deploy.engines.tensorrt_api import default_profile

            engine_path = Path(artifact)
            profile = default_profile(options)
            trt = trt_ep_options(
                options.precision, info.input.name, info.image_shape,
                (profile.min, profile.opt, profile.max),
            )  # fmt: skip
            session = create_session(
                artifact,
                self._providers(out_dir, trt),
                _session_options(options.threads, True, static=static),
                options.static_batch,
            )
            dtype = np.float16 if info.input.dtype == "float16" else np.float32
            warm = np.zeros((profile.opt, *info.image_shape), dtype)
            session.run(None, {info.input.name: warm})
            del session
            # which provider each node really ran on (not only the session's first provider)
            placed = nodes_by_provider(artifact, self._providers(out_dir, trt), warm)
            fallback = {p: n for p, n in placed.items() if p != self.provider}
        sidecar = Sidecar.describe(
            backend=self.name,
            runtime="onnxruntime",
            runtime_version=ort.__version__,
            options=options,
            artifact=artifact,
            info=info,
            engine_path=engine_path,
            build_seconds=time.perf_counter() - start,
            details={
                "providers": [_provider_name(p) for p in self._providers(out_dir)],
                **({"tensorrt_provider": trt} if self.provider == TENSORRT_EP else {}),
                **(
                    {
                        "nodes_by_provider": {p: len(n) for p, n in placed.items()},
                        "fallback_nodes": fallback,
                    }
                    if self.provider != CPU
                    else {}
                ),
                "graph_optimization": "ORT_ENABLE_ALL"
                + (" (saved)" if self.provider == CPU else " (at load)"),
                **({"free_dimension_override": dict([static])} if static else {}),
            },
            relative=self.provider == CPU,
        )
        sidecar_path = sidecar.write(out_dir / "engine.json")
        return Engine(self.name, engine_path, sidecar, sidecar_path)

    def runner(self, engine: Engine) -> OrtRunner:
        import onnxruntime as ort

        # the optimized model may hold CPU-specific fused ops: machine-specific
        engine.sidecar.check_compatible(ort.__version__, engine.path, machine_specific=True)
        trt = engine.sidecar.details.get("tensorrt_provider")
        return OrtRunner(
            engine, self._providers(engine.sidecar_path.parent, trt), optimize=self.provider != CPU
        )


class OrtRunner(Runner):
    def __init__(self, engine: Engine, providers: list, optimize: bool = False) -> None:
        super().__init__(engine)
        self.providers = providers
        self.optimize = optimize
        self.session = None
        self.output_name = None

    def activate(self) -> None:
        options = self.engine.sidecar.options
        # the saved CPU graph has its static batch in its input already; the artifact run by a
        # GPU provider takes the override again
        override = self.engine.sidecar.details.get("free_dimension_override", {})
        self.session = create_session(
            self.engine.path,
            self.providers,
            _session_options(
                options.get("threads"),
                self.optimize,
                knobs=options,
                static=next(iter(override.items()), None),
            ),
            self.static_batch,
        )
        self.output_name = self.session.get_outputs()[0].name

    def deactivate(self) -> None:
        self.session = None

    def computed(self) -> Computed:
        providers = self.session.get_providers()
        if providers[0] == CPU:  # the engine is the optimized graph it runs
            return onnx_graph_computed(self.engine.path, providers)
        return provider_computed(self.engine.sidecar.options["precision"], providers)

    def _infer_impl(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: batch})[0]
