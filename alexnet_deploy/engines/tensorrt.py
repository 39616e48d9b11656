"""Native TensorRT engines (``.plan``) from the FP32, FP16 and INT8 Q/DQ ONNX artifacts.

GPU-only core, kept small: everything that can be decided without a GPU (API per version,
profile parsing, parser-error formatting, Q/DQ form check, sidecar compatibility) lives in
``tensorrt_api``, ``calib.tensorrt_check`` and ``sidecar`` and is tested on the CPU. Buffers
are torch CUDA tensors; inference uses the tensor-name API and ``execute_async_v3``.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np

from alexnet_deploy.engines.base import Backend, Capability, Engine, Runner
from alexnet_deploy.engines.options import BuildOptions
from alexnet_deploy.engines.sidecar import Sidecar
from alexnet_deploy.engines.tensorrt_api import (
    Profile,
    api_from_module,
    default_profile,
    format_parser_errors,
    parser_errors,
)
from alexnet_deploy.errors import AlexnetDeployError, UsageError
from alexnet_deploy.fileio import atomic_path, sha256_file

# torch dtypes of TensorRT's DataType members, by name (str() of a member: 'DataType.FLOAT')
TORCH_DTYPES = {
    "FLOAT": "float32",
    "HALF": "float16",
    "BF16": "bfloat16",
    "INT8": "int8",
    "UINT8": "uint8",
    "INT32": "int32",
    "INT64": "int64",
    "BOOL": "bool",
}


def timing_cache_name(gpu: dict, trt_version: str) -> str:
    """The timing cache shared by builds in one engines directory, keyed by what makes its
    timings valid: GPU model, compute capability and TensorRT version (TensorRT refuses a
    cache of another device or version, and set_timing_cache then returns False)."""
    import re

    slug = re.sub(r"[^A-Za-z0-9]+", "-", str(gpu.get("name", "gpu"))).strip("-").lower()
    cc = str(gpu.get("compute_capability", "unknown")).replace(".", "")
    return f"tensorrt-timing-{slug}-sm{cc}-trt{trt_version}.cache"


def torch_dtype_name(trt_dtype) -> str:
    """The torch dtype name of a TensorRT DataType member (refuses one it cannot bind)."""
    name = str(trt_dtype).rsplit(".", 1)[-1]
    if name not in TORCH_DTYPES:
        raise AlexnetDeployError(f"TensorRT tensor type {name} has no buffer type here")
    return TORCH_DTYPES[name]


def current_gpu() -> dict:
    """Name, compute capability and driver of GPU 0, from torch (no TensorRT needed)."""
    import torch

    from alexnet_deploy.sysinfo import gpu_info

    props = torch.cuda.get_device_properties(0)
    smi = gpu_info()
    return {
        "name": props.name,
        "compute_capability": f"{props.major}.{props.minor}",
        "driver": smi[0]["driver"] if smi else "unknown",
    }


def check_plan_compatible(sidecar: Sidecar, gpu: dict, trt_version: str, plan: Path) -> None:
    """Refuse a plan built for another GPU, compute capability or TensorRT version, within
    what its portability options allow (engines/trt_portability.py)."""
    from alexnet_deploy.engines.trt_portability import (
        hardware_mismatch,
        portability_of,
        version_mismatch,
    )

    level, version_compatible = portability_of(sidecar.options)
    rebuild = "rebuild it on this machine with 'alexnet-deploy build --backend tensorrt' (plans are not portable)"
    why = version_mismatch(sidecar.runtime_version, trt_version, version_compatible)
    why = why or hardware_mismatch(level, sidecar.details.get("gpu", {}), gpu)
    if why:
        raise AlexnetDeployError(f"{plan} was {why.format(where='this machine')}", hint=rebuild)
    if not plan.is_file() or sha256_file(plan) != sidecar.engine_sha256:
        raise AlexnetDeployError(
            f"{plan} is missing, corrupt or truncated (sha256 differs from its sidecar)",
            hint=rebuild,
        )


class TensorRTBackend(Backend):
    name = "tensorrt"
    precisions = ("fp32", "fp16", "bf16", "int8")

    def capability(self) -> Capability:
        if importlib.util.find_spec("tensorrt") is None:
            return Capability(
                False,
                "tensorrt is not installed (its packages fetch libraries from NVIDIA's index)",
                extra="tensorrt",
            )
        try:
            import tensorrt as trt

            api_from_module(trt)
        except Exception as err:  # the bindings alone fail to import without their libraries
            return Capability(
                False, f"tensorrt fails to import: {str(err).splitlines()[0]}", extra="tensorrt"
            )
        import torch

        if not torch.cuda.is_available():
            return Capability(False, "no CUDA device visible to torch", trt.__version__)
        return Capability(True, version=trt.__version__)

    def build(self, artifact: Path, options: BuildOptions, out_dir: Path) -> Engine:
        import onnx
        import tensorrt as trt

        from alexnet_deploy.calib.tensorrt_check import (
            check_tensorrt_float_types,
            check_tensorrt_qdq,
        )
        from alexnet_deploy.onnx_model import read_artifact

        api = api_from_module(trt)
        info = read_artifact(artifact)
        profile = default_profile(options)
        if options.precision == "int8" and not options.legacy_int8:
            check_tensorrt_qdq(
                onnx.load(str(artifact))
            )  # names the offending node, before building
        if options.precision in ("fp16", "bf16"):
            check_tensorrt_float_types(onnx.load(str(artifact)))  # names the tensor, first
        if options.legacy_int8 and not api.legacy_int8:
            raise UsageError(
                f"--legacy-int8 needs TensorRT 10 (this is {trt.__version__})",
                hint="use the Q/DQ INT8 artifact",
            )

        start = time.perf_counter()
        logger = trt.Logger(trt.Logger.WARNING)
        builder = trt.Builder(logger)
        flags = 0
        if api.strongly_typed and not options.legacy_int8:
            flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
        network = builder.create_network(flags)
        parser = trt.OnnxParser(network, logger)
        if not parser.parse_from_file(str(artifact)):
            raise AlexnetDeployError(format_parser_errors(parser_errors(parser), str(artifact)))
        config = builder.create_builder_config()
        config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, options.workspace_mb << 20)
        # TF32 is on by default (10.x, 11.x) and would run FP32 layers with 10-bit mantissas on
        # Ampere and later: the precision is the ONNX file's, so float32 means float32
        config.clear_flag(trt.BuilderFlag.TF32)
        gpu = current_gpu()
        if options.precision == "bf16" and not _has_bf16(gpu):
            raise AlexnetDeployError(
                f"this GPU ({gpu['name']}, compute capability {gpu['compute_capability']}) has "
                "no BF16: TensorRT runs bf16 from compute capability 8.0 (Ampere)",
                hint="use fp16 or int8 on this GPU",
            )
        _set_portability(trt, config, options, gpu)
        optimization = builder.create_optimization_profile()
        optimization.set_shape(info.input.name, *profile.shapes(info.image_shape))
        config.add_optimization_profile(optimization)
        cache_path = out_dir.parent / timing_cache_name(gpu, trt.__version__)
        timing = config.create_timing_cache(
            cache_path.read_bytes() if cache_path.is_file() else b""
        )
        cache_used = "reused" if cache_path.is_file() else "new"
        if not config.set_timing_cache(timing, ignore_mismatch=False):
            # a cache TensorRT will not take (another device or version under this name):
            # start an empty one rather than build with none
            timing = config.create_timing_cache(b"")
            cache_used = "refused, started anew"
            if not config.set_timing_cache(timing, ignore_mismatch=False):
                cache_used = "none (TensorRT refused an empty cache)"
        if options.legacy_int8:
            from alexnet_deploy.engines.tensorrt_legacy import legacy_int8_config

            legacy_int8_config(trt, config, artifact)
        serialized = builder.build_serialized_network(network, config)
        if serialized is None:
            raise AlexnetDeployError(
                f"TensorRT failed to build an engine from {artifact} (see its log above)"
            )
        plan = out_dir / "model.plan"
        with atomic_path(plan) as tmp:
            tmp.write_bytes(bytes(serialized))
        filled = config.get_timing_cache()
        if filled is not None:  # None when no cache was in use
            with atomic_path(cache_path) as tmp:
                tmp.write_bytes(bytes(filled.serialize()))
        sidecar = Sidecar.describe(
            backend=self.name,
            runtime="tensorrt",
            runtime_version=trt.__version__,
            options=options,
            artifact=artifact,
            info=info,
            engine_path=plan,
            build_seconds=time.perf_counter() - start,
            details={
                "gpu": gpu,
                "tf32": False,
                "hardware_compat": options.hardware_compat,
                "version_compatible": options.version_compatible,
                "profile": str(profile),
                "strongly_typed": bool(flags),
                "legacy_int8": options.legacy_int8,
                "timing_cache": str(cache_path),
                "timing_cache_state": cache_used,
                "api": {"major": api.major, "precision_flags": api.precision_flags},
            },
        )
        return Engine(self.name, plan, sidecar, sidecar.write(out_dir / "engine.json"))

    def runner(self, engine: Engine) -> TensorRTRunner:
        import tensorrt as trt

        check_plan_compatible(engine.sidecar, current_gpu(), trt.__version__, engine.path)
        return TensorRTRunner(engine)


def _has_bf16(gpu: dict) -> bool:
    """BF16 tensor cores: compute capability 8.0 (Ampere) and later."""
    from alexnet_deploy.engines.trt_portability import AMPERE_COMPUTE_CAPABILITY, version_tuple

    return version_tuple(gpu.get("compute_capability", "")) >= AMPERE_COMPUTE_CAPABILITY


def _set_portability(trt, config, options: BuildOptions, gpu: dict) -> None:
    """Hardware and version compatibility of the plan (engines/trt_portability.py)."""
    from alexnet_deploy.engines.trt_portability import (
        AMPERE_COMPUTE_CAPABILITY,
        HARDWARE_LEVELS,
        version_tuple,
    )

    levels = {  # written out, so the real-bindings test checks each name per release
        "ampere+": trt.HardwareCompatibilityLevel.AMPERE_PLUS,
        "same-cc": trt.HardwareCompatibilityLevel.SAME_COMPUTE_CAPABILITY,
    }
    if HARDWARE_LEVELS[options.hardware_compat] is not None:
        if options.hardware_compat == "ampere+" and (
            version_tuple(gpu.get("compute_capability", "")) < AMPERE_COMPUTE_CAPABILITY
        ):
            raise UsageError(
                f"--hardware-compat ampere+ needs an Ampere or later GPU to build on; this is "
                f"{gpu.get('name')!r} (compute capability {gpu.get('compute_capability')})",
                hint="build on an Ampere or later GPU, or drop --hardware-compat",
            )
        config.hardware_compatibility_level = levels[options.hardware_compat]
    if options.version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)


class _ExecutionSlot:
    """One execution context with its own CUDA stream and output buffers: TensorRT requires one
    context per thread (execute_async_v3 releases the GIL), so each worker gets a slot."""

    def __init__(self, plan, io: list[tuple[str, bool, str]], input_name: str) -> None:
        import torch

        self.context = plan.create_execution_context()
        if self.context is None:
            raise AlexnetDeployError("TensorRT could not create an execution context (GPU memory?)")
        self.stream = torch.cuda.Stream()
        self.io, self.input_name = io, input_name

    def run(self, device_in):
        """Bind every I/O tensor by name, run, synchronize; the first output (the logits)."""
        import torch

        if not device_in.is_contiguous():  # TensorRT reads dense NCHW
            device_in = device_in.contiguous()
        # the caller's stream may still be writing the input: ours waits for it
        self.stream.wait_stream(torch.cuda.current_stream(device_in.device))
        context = self.context
        if not context.set_input_shape(self.input_name, tuple(device_in.shape)):
            raise AlexnetDeployError(
                f"TensorRT refused input shape {tuple(device_in.shape)} for {self.input_name!r}"
            )
        outputs = []
        for name, is_input, dtype in self.io:
            if is_input:
                tensor = device_in
            else:
                shape = tuple(context.get_tensor_shape(name))
                tensor = torch.empty(shape, device=device_in.device, dtype=getattr(torch, dtype))
                outputs.append(tensor)
            if not context.set_tensor_address(name, tensor.data_ptr()):
                raise AlexnetDeployError(f"TensorRT refused the buffer of tensor {name!r}")
        if not context.execute_async_v3(self.stream.cuda_stream):
            raise AlexnetDeployError("TensorRT execute_async_v3 failed")
        self.stream.synchronize()
        return outputs[0]

    def run_host(self, batch: np.ndarray) -> np.ndarray:
        """A host batch in, host logits out."""
        import torch

        return self.run(torch.from_numpy(batch).to("cuda")).cpu().numpy()


class TensorRTRunner(Runner):
    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        profile = Profile.parse(engine.sidecar.details["profile"])
        self.min_batch, self.max_batch = profile.min, profile.max
        self.plan = self.slot = None
        self.io: list[tuple[str, bool, str]] = []

    def activate(self) -> None:
        import tensorrt as trt

        runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        if self.engine.sidecar.options.get("version_compatible"):
            # a version-compatible plan carries its lean runtime: host code TensorRT must run
            runtime.engine_host_code_allowed = True
        self.plan = runtime.deserialize_cuda_engine(self.engine.path.read_bytes())
        if self.plan is None:
            raise AlexnetDeployError(
                f"TensorRT cannot deserialize {self.engine.path}", hint="rebuild it"
            )
        names = [self.plan.get_tensor_name(i) for i in range(self.plan.num_io_tensors)]
        self.io = [
            (
                name,
                self.plan.get_tensor_mode(name) == trt.TensorIOMode.INPUT,
                torch_dtype_name(self.plan.get_tensor_dtype(name)),
            )
            for name in names
        ]
        self.slot = _ExecutionSlot(self.plan, self.io, self.input_name)

    def deactivate(self) -> None:
        self.slot = self.plan = None

    def workers(self, count: int) -> list:
        """One execution context (and stream and buffers) per worker thread."""
        slots = [self.slot] + [
            _ExecutionSlot(self.plan, self.io, self.input_name) for _ in range(count - 1)
        ]
        return [self._infer_on(slot) for slot in slots[:count]]

    def _infer_on(self, slot: _ExecutionSlot):
        def infer(batch: np.ndarray) -> np.ndarray:
            self.check_batch(batch)
            return slot.run_host(batch)

        return infer

    def check_batch(self, batch: np.ndarray) -> None:
        super().check_batch(batch)
        if batch.shape[0] < self.min_batch:
            raise UsageError(
                f"batch {batch.shape[0]} is below the engine profile's minimum {self.min_batch}"
            )

    def _infer_impl(self, batch: np.ndarray) -> np.ndarray:
        return self.slot.run_host(batch)
