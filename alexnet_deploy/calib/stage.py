"""What every precision stage (FP16, INT8, NNCF's INT8) shares: the data it is asked to use,
the check of its input model, the guard on its output, the metadata it writes into the
artifact, and when the fidelity budget is enforced."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from alexnet_deploy import constants as C
from alexnet_deploy.calib.data import load_calibration_data
from alexnet_deploy.calib.samples import CalibrationData
from alexnet_deploy.errors import AlexnetDeployError, UsageError
from alexnet_deploy.models.variants import Preprocessing
from alexnet_deploy.onnx_model import ArtifactInfo
from alexnet_deploy.outputs import check_outputs


@dataclass(frozen=True)
class DataRequest:
    data: str = "shipped"
    calib_size: int | None = None
    eval_size: int | None = None
    seed: int = C.DEFAULT_SEED
    labels: Path | None = None
    eval_data: str | None = None  # held-out set from another source; then all of data calibrates
    preprocessing: Preprocessing | None = None  # overrides the model's metadata
    batch_size: int = C.CALIBRATION_BATCH_SIZE
    # the command takes --input-size ... --std, so a hint may name them (not part of any key)
    preprocessing_flags: bool = False

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1, got {self.batch_size}")

    def inputs(self) -> dict[str, str | Path | None]:
        """The files and folders this request reads, for the output checks (outputs.py):
        'shipped' and 'synthetic' name none."""
        return {
            "calibration data": self.data,
            "held-out data": self.eval_data,
            "labels file": self.labels,
        }

    def source_key(self) -> str:
        """What an artifact made for this request depends on, keyed without decoding an
        image: its settings, each data file's name and sha256 (a folder's images, an array
        file, the labels), and the versions of ONNX Runtime, Pillow and this tool. Recorded in
        the INT8 file, so a cached one made for other data is not taken for this request's."""
        import hashlib
        import json
        from dataclasses import asdict

        import onnxruntime
        import PIL

        from alexnet_deploy import __version__
        from alexnet_deploy.calib.images import images_in
        from alexnet_deploy.calib.sources import shipped_images
        from alexnet_deploy.fileio import sha256_file

        def files(data) -> list | None:
            if data is None or data == C.SYNTHETIC:
                return None
            path = shipped_images() if data == "shipped" else Path(data)
            found = images_in(path) if path.is_dir() else [path] if path.is_file() else []
            return [
                (str(p.relative_to(path) if path.is_dir() else p.name), sha256_file(p))
                for p in found
            ]

        key = {
            **{k: str(v) for k, v in asdict(self).items() if k != "preprocessing_flags"},
            "files": [files(self.data), files(self.eval_data), files(self.labels)],
            "versions": [onnxruntime.__version__, PIL.__version__, __version__],
        }
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()

    def load(self, info: ArtifactInfo) -> CalibrationData:
        """The calibration and held-out splits this request names, shaped for ``info``."""
        return load_calibration_data(
            self.data,
            image_shape=info.image_shape,
            preprocessing=self.preprocessing or info.preprocessing(),
            calib_size=self.calib_size,
            eval_size=self.eval_size,
            seed=self.seed,
            labels_file=self.labels,
            eval_data=self.eval_data,
            preprocessing_flags=self.preprocessing_flags,
        )

    def for_model(self, info: ArtifactInfo) -> DataRequest:
        """This request as ``info``'s model can run it: one image at a time for a model with a
        fixed batch of 1 (a larger fixed batch is refused: ArtifactInfo.batch_for)."""
        return replace(self, batch_size=info.batch_for(self.batch_size))


def check_input_model(info: ArtifactInfo) -> None:
    info.require_float_input()
    if info.precision != "fp32":
        article = "a" if info.precision.startswith("b") else "an"  # a bf16; an int8, an fp16
        raise AlexnetDeployError(
            f"{info.path} is already {article} {info.precision} model; FP16, BF16 and INT8 are "
            "made from the FP32 model",
            hint="pass the FP32 .onnx written by 'alexnet-deploy export' or 'alexnet-deploy "
            "import' (the one this file was made from)",
        )
    if info.input.dtype != "float32":
        raise AlexnetDeployError(
            f"{info.path}: input {info.input.name!r} is {info.input.dtype}, expected float32"
        )


def prepare_artifact_output(
    out: Path, model_path: Path, *, force: bool, command: str, request: DataRequest | None = None
) -> None:
    """The output checks (outputs.py) for an artifact made from ``model_path``: never an
    input (the model, its data), an existing file only with ``force`` and only one of ours."""
    inputs = {"input model": model_path, **(request.inputs() if request else {})}
    check_outputs(command, {"-o": out}, inputs, force=force)


def write_artifact_metadata(model, values: dict[str, str]) -> None:
    existing = {p.key: p for p in model.metadata_props}
    for key, value in values.items():
        if C.METADATA_PREFIX + key in existing:
            existing[C.METADATA_PREFIX + key].value = value
        else:
            entry = model.metadata_props.add()
            entry.key, entry.value = C.METADATA_PREFIX + key, value


def budget_policy(info: ArtifactInfo, data: CalibrationData) -> tuple[bool, str]:
    if info.trained is False:
        return (
            False,
            "untrained weights: fidelity figures are uninformative, --max-top1-drop not enforced",
        )
    if data.synthetic:
        return (
            False,
            "synthetic data: fidelity figures are uninformative, --max-top1-drop not enforced",
        )
    return True, ""
