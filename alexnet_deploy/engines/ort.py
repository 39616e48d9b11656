"""ONNX Runtime: the embedded default. CPU execution provider by default; the CUDA provider
when onnxruntime-gpu and a GPU are present. The engine is ONNX Runtime's optimized model
(saved once at build, loaded with graph optimizations off: no re-optimizing at each start)."""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np

from alexnet_deploy.engines.base import Backend, Capability, Engine, Runner
from alexnet_deploy.engines.options import BuildOptions
from alexnet_deploy.engines.sidecar import Sidecar
from alexnet_deploy.errors import AlexnetDeployError
from alexnet_deploy.fileio import atomic_path

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"


def _session_options(threads: int | None, optimize: bool, save_to: Path | None = None):
    import onnxruntime as ort

    so = ort.SessionOptions()
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


def create_session(path: Path, providers: list[str], so):
    """An InferenceSession that really uses ``providers[0]``: onnxruntime-gpu lists CUDA even
    without a GPU and silently falls back to the CPU, so the fallback is an error here."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), sess_options=so, providers=providers)
    except Exception as err:  # ORT raises its own Fail/InvalidGraph/... types
        raise AlexnetDeployError(
            f"ONNX Runtime cannot load {path}: {str(err).splitlines()[0]}"
        ) from None
    if session.get_providers()[0] != providers[0]:
        raise AlexnetDeployError(
            f"ONNX Runtime did not use {providers[0]} (it fell back to {session.get_providers()})",
            hint="check the GPU driver and that onnxruntime-gpu, not onnxruntime, is installed",
        )
    return session


class OrtBackend(Backend):
    name = "ort"
    precisions = ("fp32", "fp16", "int8")

    def __init__(self, provider: str = CPU) -> None:
        self.provider = provider
        if provider != CPU:
            self.name = "ort-cuda"

    def capability(self) -> Capability:
        if importlib.util.find_spec("onnxruntime") is None:
            return Capability(False, "onnxruntime is not installed", extra="dev")
        import onnxruntime as ort

        if self.provider not in ort.get_available_providers():
            return Capability(
                False, f"{self.provider} is not in this onnxruntime build", ort.__version__, "gpu"
            )
        if self.provider == CUDA:
            from alexnet_deploy.sysinfo import gpu_info

            if not gpu_info():
                return Capability(
                    False,
                    "onnxruntime-gpu is installed but no NVIDIA GPU was found",
                    ort.__version__,
                )
        return Capability(True, version=ort.__version__)

    def _providers(self) -> list[str]:
        return [self.provider] if self.provider == CPU else [self.provider, CPU]

    def build(self, artifact: Path, options: BuildOptions, out_dir: Path) -> Engine:
        import onnxruntime as ort

        from alexnet_deploy.artifact import read_artifact

        info = read_artifact(artifact)
        engine_path = out_dir / "model.ort.onnx"
        start = time.perf_counter()
        with atomic_path(engine_path) as tmp:
            session = create_session(
                artifact, self._providers(), _session_options(options.threads, True, tmp)
            )
            del session
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
                "providers": self._providers(),
                "graph_optimization": "ORT_ENABLE_ALL (saved)",
            },
        )
        sidecar_path = sidecar.write(out_dir / "engine.json")
        return Engine(self.name, engine_path, sidecar, sidecar_path)

    def runner(self, engine: Engine) -> OrtRunner:
        import onnxruntime as ort

        # the optimized model may hold CPU-specific fused ops: machine-specific
        engine.sidecar.check_compatible(ort.__version__, engine.path, machine_specific=True)
        return OrtRunner(engine, self._providers())


class OrtRunner(Runner):
    def __init__(self, engine: Engine, providers: list[str]) -> None:
        super().__init__(engine)
        self.providers = providers
        self.session = None
        self.output_name = None

    def activate(self) -> None:
        threads = self.engine.sidecar.options.get("threads")
        self.session = create_session(
            self.engine.path, self.providers, _session_options(threads, False)
        )
        self.output_name = self.session.get_outputs()[0].name

    def deactivate(self) -> None:
        self.session = None

    def _infer_impl(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: batch})[0]
