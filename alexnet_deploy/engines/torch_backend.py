"""PyTorch eager FP32 (optionally channels_last): the reference users compare against.

The model is rebuilt from the artifact's declared variant and its weights read back from the
ONNX initializers (the exporter keeps the state-dict names), so the torch engine runs exactly
the weights the other backends run. There is no compiled form: the "engine" is the artifact.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path

import numpy as np

from alexnet_deploy.engines.base import Backend, Capability, Engine, Runner
from alexnet_deploy.engines.options import BuildOptions
from alexnet_deploy.engines.sidecar import Sidecar
from alexnet_deploy.errors import AlexnetDeployError


def state_dict_from_onnx(path: Path, expected: dict) -> dict:
    import onnx
    import torch
    from onnx import numpy_helper

    model = onnx.load(str(path))
    inits = {i.name: i for i in model.graph.initializer}
    missing = [k for k in expected if k not in inits]
    if missing:
        raise AlexnetDeployError(
            f"{path} does not carry the weights {missing[:3]} under their PyTorch names",
            hint="the torch backend needs an FP32 model written by 'alexnet-deploy export'",
        )
    return {k: torch.from_numpy(numpy_helper.to_array(inits[k]).copy()) for k in expected}


class TorchBackend(Backend):
    name = "torch"
    precisions = ("fp32",)

    def capability(self) -> Capability:
        if importlib.util.find_spec("torch") is None:
            return Capability(False, "torch is not installed", extra="dev")
        import torch

        return Capability(True, version=torch.__version__)

    def build(self, artifact: Path, options: BuildOptions, out_dir: Path) -> Engine:
        import torch

        from alexnet_deploy.models.variants import get_variant
        from alexnet_deploy.onnx_model import read_artifact

        info = read_artifact(artifact)
        if "variant" not in info.metadata:
            raise AlexnetDeployError(
                f"{artifact} has no variant metadata, so the torch backend cannot rebuild its network",
                hint="use a model written by 'alexnet-deploy export'",
            )
        variant = get_variant(info.metadata["variant"])
        start = time.perf_counter()
        state_dict_from_onnx(artifact, variant.build().state_dict())  # fails now, not at load
        sidecar = Sidecar.describe(
            backend=self.name,
            runtime="torch",
            runtime_version=torch.__version__,
            options=options,
            artifact=artifact,
            info=info,
            engine_path=Path(artifact),
            build_seconds=time.perf_counter() - start,
            details={
                "variant": variant.name,
                "channels_last": options.channels_last,
                "threads": torch.get_num_threads() if options.threads is None else options.threads,
            },
            relative=False,
        )
        sidecar_path = sidecar.write(out_dir / "engine.json")
        return Engine(self.name, Path(artifact).resolve(), sidecar, sidecar_path)

    def runner(self, engine: Engine) -> TorchRunner:
        import torch

        engine.sidecar.check_compatible(torch.__version__, engine.path, machine_specific=False)
        return TorchRunner(engine)


class TorchRunner(Runner):
    def __init__(self, engine: Engine) -> None:
        super().__init__(engine)
        self.model = None

    def activate(self) -> None:
        import torch

        from alexnet_deploy.models.variants import get_variant

        side = self.engine.sidecar
        model = get_variant(side.details["variant"]).build()
        model.load_state_dict(state_dict_from_onnx(self.engine.path, model.state_dict()))
        if side.details.get("channels_last"):
            model = model.to(memory_format=torch.channels_last)
        threads = side.options.get("threads")
        if threads is not None:
            torch.set_num_threads(threads)
        self.model = model.eval()

    def deactivate(self) -> None:
        self.model = None

    def _infer_impl(self, batch: np.ndarray) -> np.ndarray:
        import torch

        x = torch.from_numpy(batch)
        if self.engine.sidecar.details.get("channels_last"):
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return self.model(x).numpy()
