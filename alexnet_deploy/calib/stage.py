"""What every precision stage (FP16, INT8, NNCF's INT8) shares: the data it is asked to use,
the check of its input model, the guard on its output, the metadata it writes into the
artifact, and when the fidelity budget is enforced."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from alexnet_deploy import constants as C
from alexnet_deploy.artifact import ArtifactInfo
from alexnet_deploy.calib.data import load_calibration_data
from alexnet_deploy.calib.samples import CalibrationData
from alexnet_deploy.errors import AlexnetDeployError, UsageError
from alexnet_deploy.fileio import prepare_output
from alexnet_deploy.models.variants import Preprocessing

Progress = Callable[[str], None]


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

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1, got {self.batch_size}")

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
        )


def check_input_model(info: ArtifactInfo) -> None:
    info.require_float_input()
    if info.precision != "fp32":
        raise AlexnetDeployError(
            f"{info.path} is already a {info.precision} model; calibration starts from the FP32 export",
            hint="pass the FP32 .onnx written by 'alexnet-deploy export'",
        )
    if info.input.dtype != "float32":
        raise AlexnetDeployError(
            f"{info.path}: input {info.input.name!r} is {info.input.dtype}, expected float32"
        )


def prepare_artifact_output(out: Path, model_path: Path, *, force: bool, what: str) -> None:
    """``prepare_output`` for an artifact made from ``model_path``: never the input itself."""
    if Path(out).resolve() == Path(model_path).resolve():
        raise UsageError(
            f"output {out} is the input model",
            hint="choose another -o; the FP32 model is never overwritten",
        )
    prepare_output(out, force=force, what=what)


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
