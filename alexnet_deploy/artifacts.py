"""The artifacts of one FP32 model: where each lives, how it is named, and whether it still
belongs to the model. The one place that knows the sibling-file naming rule; every stage asks it.

Beside the FP32 export ``DIR/STEM.onnx``:

* ``STEM.fp16.onnx``: the FP16 conversion;
* ``STEM.int8-tensorrt.onnx`` and ``STEM.int8-cpu.onnx``: the tool's INT8 Q/DQ forms (the CPU
  form of whichever CPU class; the class is in its metadata);
* ``STEM.int8-nncf.onnx``: NNCF's INT8 model;
* ``STEM.int8.report.json`` and ``STEM.int8.trt-calibration.cache``: calibration's report and
  legacy TensorRT cache, beside the INT8 files it wrote.

A derived artifact records the sha256 of the FP32 model it was made from (``source_sha256``);
:meth:`ArtifactSet.derived` refuses one made from another model, with the command that remakes
it, so a re-exported model never runs with its predecessor's INT8 or FP16 file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alexnet_deploy.errors import AlexnetDeployError
from alexnet_deploy.fileio import sha256_file

INT8_FORMS = ("cpu", "tensorrt", "nncf")

# how each derived artifact is made, for the hint of a missing or stale one
MAKES = {
    "fp16": "alexnet-deploy fp16 {model}",
    "int8": "alexnet-deploy calibrate {model}",
    "int8-nncf": "alexnet-deploy calibrate {model} --quantizer nncf",
}


def stem_of(path: Path) -> str:
    """The model stem of any file of the set (``m.int8-cpu.onnx`` -> ``m``)."""
    return Path(path).name.split(".")[0]


@dataclass(frozen=True)
class ArtifactSet:
    model: Path  # the FP32 export

    def __post_init__(self) -> None:
        object.__setattr__(self, "model", Path(self.model))

    @classmethod
    def of(cls, path: Path) -> ArtifactSet:
        """The set a file belongs to, by its name (``DIR/m.int8-cpu.onnx`` -> ``DIR/m.onnx``)."""
        path = Path(path)
        return cls(path.with_name(f"{stem_of(path)}.onnx"))

    @property
    def stem(self) -> str:
        return self.model.stem

    def _sibling(self, suffix: str, directory: Path | None = None) -> Path:
        return (Path(directory) if directory else self.model.parent) / f"{self.stem}.{suffix}"

    @property
    def fp16(self) -> Path:
        return self._sibling("fp16.onnx")

    def int8(self, form: str) -> Path:
        """``form``: ``cpu``, ``tensorrt`` or ``nncf``."""
        if form not in INT8_FORMS:
            raise ValueError(f"unknown INT8 form {form!r}; one of {INT8_FORMS}")
        return self._sibling(f"int8-{form}.onnx")

    def plan(self, form: str, directory: Path | None = None) -> Path:
        """A precision plan's file (``plan``): some layers INT8, the rest float; ``form``:
        ``cpu`` or ``tensorrt``."""
        return self._sibling(f"plan-{form}.onnx", directory)

    def int8_report(self, directory: Path | None = None) -> Path:
        return self._sibling("int8.report.json", directory)

    def trt_cache(self, directory: Path | None = None) -> Path:
        return self._sibling("int8.trt-calibration.cache", directory)

    def scratch_root(self, directory: Path | None = None) -> Path:
        """``DIR/.cache``: calibration's range cache (``calibration/``) and per-run scratch
        directories, beside the INT8 files it writes."""
        return (Path(directory) if directory else self.model.parent) / ".cache"

    def for_precision(self, precision: str, form: str = "cpu") -> Path:
        """The file that carries ``precision`` (the model itself for fp32)."""
        if precision == "fp32":
            return self.model
        if precision == "fp16":
            return self.fp16
        return self.int8(form)

    def source_sha256(self) -> str:
        return sha256_file(self.model)

    def belongs(self, path: Path) -> bool:
        """``path`` exists and was made from this model (its recorded source sha256)."""
        from alexnet_deploy.artifact import read_artifact

        path = Path(path)
        if not path.is_file():
            return False
        return read_artifact(path).metadata.get("source_sha256") == self.source_sha256()

    def derived(self, precision: str, form: str = "cpu") -> Path:
        """The derived artifact for ``precision`` (and INT8 ``form``), checked to exist and to
        belong to this model; else an error naming the command that (re)makes it."""
        path = self.for_precision(precision, form)
        if precision == "fp32":
            return path
        make = "int8-nncf" if form == "nncf" else precision
        fix = MAKES[make].format(model=self.model)
        if not path.is_file():
            raise AlexnetDeployError(
                f"no {precision} artifact for {self.model} (looked for {path})",
                hint=f"make it with '{fix}'",
            )
        if not self.belongs(path):
            raise AlexnetDeployError(
                f"{path} was made from another model than {self.model} (its source sha256 "
                "differs: the model was re-exported or replaced since)",
                hint=f"remake it with '{fix} --force'",
            )
        return path

    def existing(self) -> dict[str, Path]:
        """Every derived file of the set that is present, by name (fp16, int8-cpu, ...)."""
        files = {"fp16": self.fp16, **{f"int8-{f}": self.int8(f) for f in INT8_FORMS}}
        return {name: path for name, path in files.items() if path.is_file()}


@dataclass(frozen=True)
class WorkDir:
    """The work directory's layout, the one place that knows it:

    * ``models/VARIANT-KEY/alexnet-VARIANT.onnx``: the main job's exports (KEY: content key of
      variant, weights, seed, opset and tool version), each with its artifact set beside it;
    * ``engines/BACKEND-PRECISION-ARTIFACTSHA-OPTIONS/``: built engines (sidecar engine.json);
    * ``reports/`` (bench), ``reports/tune/``, ``reports/gate-run/``; ``tuned.json``;
    * ``.cache/``: measured machine ceilings; ``.alexnet-deploy.lock``: one run at a time.
    """

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    def export(self, variant: str, key: str) -> Path:
        return self.root / "models" / f"{variant}-{key}" / f"alexnet-{variant}.onnx"

    def exports(self) -> list[Path]:
        """The main job's exports in this work directory, in name order."""
        return sorted((self.root / "models").glob("*-*/alexnet-*.onnx"))

    @property
    def engines(self) -> Path:
        return self.root / "engines"

    def engine(self, backend: str, precision: str, artifact_sha: str, options_key: str) -> Path:
        return self.engines / f"{backend}-{precision}-{artifact_sha[:12]}-{options_key}"

    def engines_of(self, backend: str) -> list[Path]:
        """Sidecars of the engines built for ``backend``, in name order."""
        return sorted(self.engines.glob(f"{backend}-*/engine.json"))

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    def plan_reports(self, model: Path) -> Path:
        """Where ``plan`` writes a model's plan file and report unless told (-o)."""
        return self.reports / f"plan-{stem_of(Path(model))}"

    @property
    def tune_reports(self) -> Path:
        return self.reports / "tune"

    @property
    def gate_run_reports(self) -> Path:
        return self.reports / "gate-run"

    @property
    def tuned(self) -> Path:
        return self.root / "tuned.json"

    @property
    def cache(self) -> Path:
        return self.root / ".cache"
