"""What an ONNX artifact is: its input/output tensors, preprocessing and provenance.

Read from the file itself (graph and ``alexnet_deploy.*`` metadata), so every later stage
(calibrate, build, bench, package) works from the artifact, not from assumptions. A model that
is not one of our exports has no metadata: its tensors still come from the graph, and the
preprocessing must then be given explicitly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from alexnet_deploy.artifacts import metadata_values, stem_of
from alexnet_deploy.errors import AlexnetDeployError

if TYPE_CHECKING:
    from alexnet_deploy.models.variants import Preprocessing

# why an engine (build, bench, predict, package) refuses a batch the graph fixes above 1
ENGINE_BATCH = "engines run a dynamic batch, or a fixed batch of 1 (one image at a time)"


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dims: tuple  # ints for fixed dims, strings for symbolic ones (e.g. "batch")
    dtype: str


@dataclass(frozen=True)
class ArtifactInfo:
    path: Path
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    metadata: dict[str, str] = field(default_factory=dict)
    opset: int = 0

    @property
    def ours(self) -> bool:
        return "variant" in self.metadata

    @property
    def model_name(self) -> str:
        """The name every output gives this model: its card's ``model_name`` (``import``,
        ``export --from``), ``alexnet-<variant>`` for a built-in export, else the file's stem
        without the suffixes the tool adds (``resnet50.v1.5.int8-cpu.onnx``: ``resnet50.v1.5``)."""
        if self.metadata.get("model_name"):
            return self.metadata["model_name"]
        if "variant" in self.metadata:
            return f"alexnet-{self.metadata['variant']}"
        return stem_of(self.path)

    @property
    def input(self) -> TensorSpec:
        return self.inputs[0]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one input."""
        self.require_float_input()
        dims = self.input.dims[1:]
        if len(dims) != 3 or not all(isinstance(d, int) for d in dims):
            raise AlexnetDeployError(
                f"{self.path}: input {self.input.name!r} has dims {list(self.input.dims)}, "
                "expected [batch, C, H, W] with fixed C, H, W"
            )
        if dims[2] in (1, 3) and dims[0] not in (1, 3):
            raise AlexnetDeployError(
                f"{self.path}: input {self.input.name!r} has dims {list(self.input.dims)}: "
                "channels last (NHWC), a layout this tool does not feed; it feeds images as "
                "[batch, C, H, W] (NCHW)",
                hint="import it: 'alexnet-deploy import MODEL.onnx -o OUT.onnx' writes a copy "
                "that takes NCHW (a Transpose in front of the graph)",
            )
        return dims  # type: ignore[return-value]

    @property
    def fixed_batch(self) -> int | None:
        """The input's batch size where the graph fixes it (an export without a dynamic batch
        axis); None where any batch runs."""
        first = self.input.dims[0] if self.input.dims else None
        return first if isinstance(first, int) and first > 0 else None

    def require_dynamic_batch(self, needed_for: str = "engines need a dynamic batch axis") -> None:
        if self.fixed_batch is not None:
            name = self.input.name
            export = (
                "export it with a dynamic batch axis, e.g. "
                f"torch.onnx.export(..., dynamic_axes={{{name!r}: {{0: 'batch'}}}})"
            )
            hint = (  # import tried already: the graph itself fixes the batch
                "the graph fixes its batch (a Reshape to [1, -1], say), so import kept it; "
                f"re-{export}, and import that"
                if self.metadata.get("source") == "import"
                else f"'alexnet-deploy import {self.path}' makes the batch dynamic where the "
                f"graph allows it; or {export}"
            )
            raise AlexnetDeployError(
                f"{self.path} has a fixed batch of {self.fixed_batch} (input {name!r} "
                f"{list(self.input.dims)}); {needed_for}",
                hint=hint,
            )

    def batch_for(
        self, requested: int, needed_for: str = "the last batch of a data set is smaller"
    ) -> int:
        """The batch size to run ``requested``-image batches of data at: a model with a fixed
        batch of 1 takes one image at a time (engines run it so, bench at batch 1); a larger
        fixed batch cannot take the smaller last batch of a data set, and is refused
        (``needed_for``: why, as the message says)."""
        if self.fixed_batch == 1:
            return 1
        self.require_dynamic_batch(needed_for)
        return requested

    def batch_refusal(self, batch: int) -> str | None:
        """Why ``batch`` images cannot run at once on this model (its graph fixes another
        batch), or None: a bench row at that batch is refused with this reason."""
        if self.fixed_batch is None or batch == self.fixed_batch:
            return None
        return (
            f"the graph fixes the batch at {self.fixed_batch} (input {self.input.name!r} "
            f"{list(self.input.dims)}): it runs batch {self.fixed_batch} only, not {batch}"
        )

    @property
    def takes_pixels(self) -> bool:
        """Exported with --preprocess: uint8 NHWC pixels in, preprocessing in the graph."""
        return self.metadata.get("input_layout", "").startswith("pixels")

    def require_float_input(self, command: str = "this command") -> None:
        """Refuse an ``export --preprocess`` model where float images are fed (``command``:
        what the user ran, as the message names it)."""
        if self.takes_pixels:
            raise AlexnetDeployError(
                f"{self.path} takes decoded uint8 pixels (exported with --preprocess): "
                f"{command} takes the float export",
                hint=f"export again without --preprocess for {command}; the --preprocess file "
                "is for deployment (feed it an RGB image as uint8 [1, height, width, 3])",
            )

    @property
    def precision(self) -> str:
        return self.metadata.get("precision", "fp32")

    @property
    def trained(self) -> bool | None:
        """True/False for our exports, None when unknown (a foreign model)."""
        if "weights" not in self.metadata:
            return None
        return self.metadata["weights"] == "trained"

    def preprocessing(self) -> Preprocessing | None:
        """The model card's preprocessing (modelcard.py); None where the metadata says nothing
        of it (a model neither exported nor imported by this tool)."""
        card = self.card()
        return None if card is None else card.preprocessing()

    def card(self):
        """The :class:`~alexnet_deploy.modelcard.ModelCard` in the metadata, or None."""
        from alexnet_deploy.modelcard import ModelCard

        return ModelCard.from_metadata(self.metadata)

    @property
    def labels(self) -> tuple[str, ...] | None:
        """Class names the model card carries (``import --labels``), or None."""
        text = self.metadata.get("labels")
        return tuple(json.loads(text)) if text else None


_DTYPES = {1: "float32", 10: "float16", 2: "uint8", 3: "int8", 7: "int64"}


def _spec(value) -> TensorSpec:
    tensor = value.type.tensor_type
    dims = tuple(d.dim_param if d.dim_param else d.dim_value for d in tensor.shape.dim)
    return TensorSpec(value.name, dims, _DTYPES.get(tensor.elem_type, str(tensor.elem_type)))


def load_model_proto(
    path: str | Path,
    *,
    what: str = "model",
    missing_hint: str = "create it with 'alexnet-deploy export' or check the path",
):
    """``onnx.load`` with user-facing errors for a missing or non-ONNX file (``missing_hint``:
    what to do about a missing one, as the command that reads it sees it)."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise AlexnetDeployError(f"{what} {path} not found", hint=missing_hint)
    try:
        return onnx.load(str(path))
    except Exception as err:  # onnx raises DecodeError, ValueError, ... for non-ONNX bytes
        raise AlexnetDeployError(
            f"{path} is not an ONNX model ({type(err).__name__})",
            hint="pass a .onnx file, for example one written by 'alexnet-deploy export' or "
            "'alexnet-deploy import'",
        ) from None


def info_from_proto(path: Path, model) -> ArtifactInfo:
    initializers = {init.name for init in model.graph.initializer}
    inputs = tuple(_spec(v) for v in model.graph.input if v.name not in initializers)
    if len(inputs) != 1:
        raise AlexnetDeployError(
            f"{path} has {len(inputs)} graph inputs ({[i.name for i in inputs]}); expected one image input",
            hint="this tool runs image classifiers with one input, [batch, C, H, W]",
        )
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    return ArtifactInfo(
        path=Path(path),
        inputs=inputs,
        outputs=tuple(_spec(v) for v in model.graph.output),
        metadata=metadata_values(model),
        opset=opset,
    )


def read_artifact(path: str | Path) -> ArtifactInfo:
    path = Path(path)
    return info_from_proto(path, load_model_proto(path))
