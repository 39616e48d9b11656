"""PyTorch eager FP32 (optionally channels_last), the reference users compare against, and BF16.

The model is rebuilt from the artifact's declared variant and its weights read back from the
ONNX initializers (the exporter keeps the state-dict names), so the torch engine runs exactly
the weights the other backends run. A user's model (``export --from``) is rebuilt from the
spec, the weights file and the seed its export recorded, once the file and the weights are
checked to be the ones exported (models/user.py). There is no compiled form: the "engine" is
the artifact.

bf16 (where the CPU has native BF16: engines/build.py checks) casts the module's weights and
its input to ``torch.bfloat16`` once (LRN kept in float32, as in the BF16 artifact: ``in_bf16``),
so oneDNN runs its bf16 kernels (ONEDNN_VERBOSE shows
``jit_bf16:avx512_core_bf16`` convolutions and ``brg_matmul:avx512_core_bf16`` on an AVX512_BF16
CPU); the logits come back as float32. ``torch.autocast("cpu", dtype=torch.bfloat16)`` reaches
the same kernels, but casts every weight again on every call (its cast cache lasts one autocast
region): 61 M weights read and written per inference, which would be timed as bf16's cost.
"""

from __future__ import annotations

import importlib.util
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from alexnet_deploy.engines.base import Backend, Capability, Engine, Runner
from alexnet_deploy.engines.computed import Computed, module_dtype, torch_computed
from alexnet_deploy.engines.options import BuildOptions
from alexnet_deploy.engines.sidecar import Sidecar
from alexnet_deploy.errors import AlexnetDeployError

if TYPE_CHECKING:
    from alexnet_deploy.onnx_model import ArtifactInfo


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


def rebuild_refusal(info: ArtifactInfo) -> AlexnetDeployError | None:
    """Why the torch backend cannot rebuild the PyTorch module ``info`` was exported from (an
    imported ONNX file has none), or None: a built-in variant, or ``export --from``'s module."""
    from alexnet_deploy.models.user import is_user_export

    artifact, metadata = info.path, info.metadata
    if is_user_export(metadata) or "variant" in metadata:
        return None
    imported = metadata.get("source") == "import"
    return AlexnetDeployError(
        f"{artifact} is an imported ONNX model: the torch backend runs a PyTorch module, and "
        "an imported model has none"
        if imported
        else f"{artifact} has no variant metadata, so the torch backend cannot rebuild its network",
        hint="run it on ort or openvino; for torch, export the PyTorch module with "
        "'alexnet-deploy export --from'"
        if imported
        else "use a model written by 'alexnet-deploy export' (--variant or --from)",
    )


def model_from_artifact(info: ArtifactInfo):
    """The PyTorch model an artifact was exported from: a built-in variant with the ONNX
    file's weights, or a user's model (``export --from``) rebuilt from its recorded source."""
    from alexnet_deploy.models.user import is_user_export, model_from_metadata
    from alexnet_deploy.models.variants import get_variant

    artifact, metadata = info.path, info.metadata
    if is_user_export(metadata):
        return model_from_metadata(metadata, info.card(), artifact)[0]
    refusal = rebuild_refusal(info)
    if refusal is not None:
        raise refusal
    model = get_variant(metadata["variant"]).build()
    model.load_state_dict(state_dict_from_onnx(artifact, model.state_dict()))
    return model.eval()


def in_bf16(model):
    """``model`` in bfloat16, its LRN layers in float32 between casts, as the BF16 artifact
    keeps them (C.FP16_KEEP_FP32_OPS: a sum of squares; PyTorch has no bfloat16 CPU kernel
    for it either)."""
    import torch
    from torch import nn

    from alexnet_deploy.models.layers import PaperLRN

    model = model.to(torch.bfloat16)
    for module in model.modules():
        if isinstance(module, PaperLRN | nn.LocalResponseNorm):
            module.float()
            module.register_forward_pre_hook(lambda _m, args: tuple(a.float() for a in args))
            module.register_forward_hook(lambda _m, _args, out: out.to(torch.bfloat16))
    return model


def forward(model, batch: np.ndarray, channels_last: bool = False) -> np.ndarray:
    """One batch through ``model``, the input cast to the weights' dtype, float32 logits out."""
    import torch

    x = torch.from_numpy(batch)
    x = x.to(module_dtype(model, x.dtype))
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        return model(x).float().numpy()


class TorchBackend(Backend):
    name = "torch"
    precisions = ("fp32", "bf16")
    no_static_batch = "an eager PyTorch model has no compiled shape"

    def capability(self) -> Capability:
        if importlib.util.find_spec("torch") is None:
            return Capability(False, "torch is not installed", extra="dev")
        import torch

        return Capability(True, version=torch.__version__)

    def build(self, artifact: Path, options: BuildOptions, out_dir: Path) -> Engine:
        import torch

        from alexnet_deploy.onnx_model import read_artifact

        info = read_artifact(artifact)
        start = time.perf_counter()
        model_from_artifact(info)  # fails now, not at load
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
                "variant": info.metadata.get("variant"),
                "model_name": info.model_name,
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

        from alexnet_deploy.onnx_model import read_artifact

        side = self.engine.sidecar
        model = model_from_artifact(read_artifact(self.engine.path))
        if side.details.get("channels_last"):
            model = model.to(memory_format=torch.channels_last)
        if side.options.get("precision") == "bf16":
            model = in_bf16(model)
        threads = side.options.get("threads")
        if threads is not None:
            torch.set_num_threads(threads)
        self.model = model.eval()

    def deactivate(self) -> None:
        self.model = None

    def computed(self) -> Computed:
        return torch_computed(self.model)

    def _infer_impl(self, batch: np.ndarray) -> np.ndarray:
        return forward(self.model, batch, bool(self.engine.sidecar.details.get("channels_last")))
