"""OpenVINO reading the ONNX artifacts (FP32, FP16 and the INT8 Q/DQ model).

The engine is OpenVINO's exported compiled model (``export_model``/``import_model``), compiled
with a batch range 1..max_batch (or one static batch: ``--static-batch``, the shape reshaped to
[B, C, H, W] before compiling), the performance hint, streams and threads; OpenVINO's own
compiled-model cache lives in the engine directory too. Inference precision is pinned to the
artifact's (OpenVINO otherwise picks bf16 on CPUs that report it, silently changing numbers);
bf16 is asked for by name, on the FP32 artifact (``INFERENCE_PRECISION_HINT=bf16``), or by a
plan file whose float layers run bf16 (``plan --keep bf16``: its INT8 layers stay INT8), or on
the INT8 artifact's float parts (``--float-precision bf16``: the layers between Q/DQ). What
the engine computed in is read back from its execution graph (engines/computed.py).
"""

from __future__ import annotations

import importlib.util
import io
import time
from pathlib import Path

import numpy as np

from alexnet_deploy.engines.base import Backend, Capability, Engine, Runner, runtime_error
from alexnet_deploy.engines.computed import Computed, openvino_computed
from alexnet_deploy.engines.options import BuildOptions
from alexnet_deploy.engines.sidecar import Sidecar
from alexnet_deploy.errors import AlexnetDeployError
from alexnet_deploy.fileio import atomic_path

DEVICE = "CPU"


def compile_config(options: BuildOptions, capabilities: list[str]) -> dict:
    precision = "f16" if options.precision == "fp16" and "FP16" in capabilities else "f32"
    # bf16 by name, or an INT8 engine's float parts: the CPU's native BF16 is checked before
    # (engines/build.py)
    if options.precision == "bf16" or options.float_precision == "bf16":
        precision = "bf16"
    config = {
        "PERFORMANCE_HINT": options.hint.upper(),
        "INFERENCE_PRECISION_HINT": precision,
    }
    if options.streams is not None:
        config["NUM_STREAMS"] = str(options.streams)
    if options.threads is not None:
        config["INFERENCE_NUM_THREADS"] = str(options.threads)
    if options.cpu_pinning is not None:
        config["ENABLE_CPU_PINNING"] = "YES" if options.cpu_pinning else "NO"
    return config


class OpenVINOBackend(Backend):
    name = "openvino"
    precisions = ("fp32", "fp16", "bf16", "int8")
    knobs = ("cpu_pinning",)
    quantizers = ("qdq", "nncf")
    float_precisions = ("bf16",)

    def capability(self) -> Capability:
        try:
            spec = importlib.util.find_spec("openvino")
        except (ImportError, ValueError):
            spec = None
        if spec is None:
            return Capability(False, "openvino is not installed", extra="openvino")
        try:
            import openvino as ov

            devices = ov.Core().available_devices
        except Exception as err:  # a broken install can raise anything here
            return Capability(False, f"openvino fails to load: {err}", extra="openvino")
        if DEVICE not in devices:
            return Capability(
                False, f"OpenVINO sees no {DEVICE} device ({devices})", ov.__version__
            )
        return Capability(True, version=ov.__version__)

    def build(self, artifact: Path, options: BuildOptions, out_dir: Path) -> Engine:
        import openvino as ov

        from alexnet_deploy.calib.bf16 import plan_bf16_layers
        from alexnet_deploy.onnx_model import read_artifact

        info = read_artifact(artifact)
        core = ov.Core()
        core.set_property({"CACHE_DIR": str(out_dir / "ov-cache")})
        start = time.perf_counter()
        try:
            model = core.read_model(str(artifact))
        except Exception as err:  # OpenVINO raises RuntimeError subclasses with long texts
            raise runtime_error("OpenVINO", "read", artifact, err) from None
        batch = (
            ov.Dimension(options.static_batch)
            if options.static_batch is not None
            else ov.Dimension(1, options.max_batch)
        )
        model.reshape({info.input.name: ov.PartialShape([batch, *info.image_shape])})
        config = compile_config(options, core.get_property(DEVICE, "OPTIMIZATION_CAPABILITIES"))
        if plan_bf16_layers(info.metadata):  # a plan's float layers run bf16 (engines/build.py)
            config["INFERENCE_PRECISION_HINT"] = "bf16"
        try:
            compiled = core.compile_model(model, DEVICE, config)
        except Exception as err:  # an operation the CPU plugin lacks, among others
            raise runtime_error("OpenVINO", "compile", artifact, err) from None
        engine_path = out_dir / "model.ov.blob"
        with atomic_path(engine_path) as tmp:
            tmp.write_bytes(compiled.export_model().getvalue())
        details = {
            "device": DEVICE,
            "config": config,
            "optimal_infer_requests": int(
                compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")
            ),
            "streams": str(compiled.get_property("NUM_STREAMS")),
            "inference_precision": str(compiled.get_property("INFERENCE_PRECISION_HINT")),
            "compiled_input_shape": str(compiled.input(0).get_partial_shape()),
            "computed_in": openvino_computed(compiled).precision,
        }
        sidecar = Sidecar.describe(
            backend=self.name,
            runtime="openvino",
            runtime_version=ov.__version__,
            options=options,
            artifact=artifact,
            info=info,
            engine_path=engine_path,
            build_seconds=time.perf_counter() - start,
            details=details,
        )
        sidecar_path = sidecar.write(out_dir / "engine.json")
        return Engine(self.name, engine_path, sidecar, sidecar_path)

    def runner(self, engine: Engine) -> OpenVINORunner:
        import openvino as ov

        engine.sidecar.check_compatible(ov.__version__, engine.path, machine_specific=True)
        return OpenVINORunner(engine)


class OpenVINORunner(Runner):
    """Latency path: one infer request. Throughput path: :meth:`workers`, one infer request
    per concurrent worker on the one compiled model, so OpenVINO spreads them over its streams."""

    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.compiled = None
        self.request = None

    def activate(self) -> None:
        import openvino as ov

        core = ov.Core()
        try:
            # the exported blob does not keep every property: pass the build's config again
            config = self.engine.sidecar.details["config"]
            self.compiled = core.import_model(
                io.BytesIO(self.engine.path.read_bytes()), DEVICE, config
            )
        except Exception as err:
            raise AlexnetDeployError(
                f"OpenVINO cannot import engine {self.engine.path}: {str(err).splitlines()[0]}",
                hint="rebuild it with 'alexnet-deploy build'",
            ) from None
        self.request = self.compiled.create_infer_request()

    def deactivate(self) -> None:
        self.request = None
        self.compiled = None

    def computed(self) -> Computed:
        return openvino_computed(self.compiled)

    def _infer_impl(self, batch: np.ndarray) -> np.ndarray:
        self.request.infer({0: batch}, share_inputs=True)
        return self.request.get_output_tensor(0).data.copy()

    def workers(self, count: int) -> list:
        """One infer request per worker, all on the one compiled model (its streams)."""

        def make(request):
            def run(batch: np.ndarray) -> np.ndarray:
                self.check_batch(batch)
                request.infer({0: batch}, share_inputs=True)
                return request.get_output_tensor(0).data.copy()

            return run

        return [make(self.compiled.create_infer_request()) for _ in range(count)]
