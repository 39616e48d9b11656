"""The artifacts of one FP32 model: where each lives, how it is named, and whether it still
belongs to the model. The one place that knows the sibling-file naming rule; every stage asks it.

Beside the FP32 export ``DIR/STEM.onnx``:

* ``STEM.fp16.onnx``: the FP16 conversion; ``STEM.bf16.onnx``: the BF16 one (TensorRT's; a CPU
  runtime runs bf16 from the FP32 model itself);
* ``STEM.int8-tensorrt.onnx`` and ``STEM.int8-cpu.onnx``: the tool's INT8 Q/DQ forms (the CPU
  form of whichever CPU class; the class is in its metadata);
* ``STEM.int8-nncf.onnx``: NNCF's INT8 model;
* ``STEM.int8.report.json`` and ``STEM.int8.trt-calibration.cache``: calibration's report and
  legacy TensorRT cache, beside the INT8 files it wrote (a TensorRT INT8 file named with
  ``calibrate -o NAME.onnx`` has its cache named after it: ``NAME.trt-calibration.cache``).

A derived artifact records the sha256 of the FP32 model it was made from (``source_sha256``);
:meth:`ArtifactSet.derived` refuses one made from another model, with the command that remakes
it, so a re-exported model never runs with its predecessor's INT8 or FP16 file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from alexnet_deploy.errors import AlexnetDeployError
from alexnet_deploy.fileio import sha256_file

INT8_FORMS = ("cpu", "tensorrt", "nncf")
TRT_CACHE_SUFFIX = ".trt-calibration.cache"


class Stage(StrEnum):
    """A step that makes (or finds) one artifact of the set: a job's ``need`` is a set of
    them (workflow.py), and bench's report records how each was obtained (:class:`StageStatus`)
    under these values, the same JSON strings as before they were typed."""

    EXPORT = "export"  # the FP32 model
    FP16 = "fp16"  # STEM.fp16.onnx
    BF16 = "bf16"  # STEM.bf16.onnx
    INT8 = "int8"  # the tool's Q/DQ forms: STEM.int8-cpu.onnx and STEM.int8-tensorrt.onnx
    INT8_NNCF = "int8-nncf"  # NNCF's: STEM.int8-nncf.onnx

    @classmethod
    def making(cls, precision: str, form: str = "cpu") -> Stage:
        """The stage whose artifact carries ``precision`` (INT8: in ``form``, or the route
        ``nncf``); the export for fp32."""
        if precision == "fp32":
            return cls.EXPORT
        if precision == "fp16":
            return cls.FP16
        if precision == "bf16":
            return cls.BF16
        return cls.INT8_NNCF if form == "nncf" else cls.INT8


class StageStatus(StrEnum):
    """How a job obtained a stage's artifact."""

    GIVEN = "given"  # the user's own model
    CACHED = "cached"  # found beside the model, made from it (and for this request)
    BUILT = "built"  # made by this run
    NOT_NEEDED = "not needed"


# how each derived artifact is made, for the hint of a missing or stale one
MAKES = {
    Stage.FP16: "alexnet-deploy fp16 {model}",
    Stage.BF16: "alexnet-deploy bf16 {model}",
    Stage.INT8: "alexnet-deploy calibrate {model}",
    Stage.INT8_NNCF: "alexnet-deploy calibrate {model} --quantizer nncf",
}


# What the set adds after the stem of ``STEM.onnx`` (the names the methods below build), so a
# stem with dots of its own (``resnet50.v1.5``) is kept whole.
_SET_SUFFIX = re.compile(
    r"\.(?:(?:fp16|bf16|int8-[\w-]+|plan-[\w-]+)\.onnx|onnx|int8\.report\.json|int8"
    + re.escape(TRT_CACHE_SUFFIX)
    + r")$"
)


def stem_of(path: Path) -> str:
    """The model stem of any file of the set (``m.int8-cpu.onnx`` -> ``m``,
    ``resnet50.v1.5.fp16.onnx`` -> ``resnet50.v1.5``); a file named otherwise: its stem."""
    name = Path(path).name
    match = _SET_SUFFIX.search(name)
    return name[: match.start()] if match and match.start() else Path(path).stem


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

    @property
    def bf16(self) -> Path:
        return self._sibling("bf16.onnx")

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

    def int8_report_for(self, output: str | None, directory: Path | None = None) -> Path:
        """Calibration's report, beside the INT8 files it describes and named after them, so
        it never describes another run's files: the set's own name for the set's own files,
        else named after ``calibrate -o``'s template (``x_{target}.onnx``: ``x.report.json``;
        ``m.int8-{target}.onnx``: ``m.int8.report.json``; ``r18.onnx``: ``r18.report.json``)."""
        if output is None:
            return self.int8_report(directory)
        name = re.sub(r"[-_.]?\{target\}", "", Path(output).name).removesuffix(".onnx")
        return Path(output).with_name(f"{name or 'int8'}.report.json")

    def trt_cache(self, directory: Path | None = None) -> Path:
        return self._sibling("int8" + TRT_CACHE_SUFFIX, directory)

    def trt_cache_for(self, tensorrt_int8: Path) -> Path:
        """The legacy cache written with the TensorRT INT8 file ``tensorrt_int8``: the set's
        own name beside the set's own file, else the name the user chose for that file
        (``calibrate -o r18.trt.onnx``: ``r18.trt.trt-calibration.cache``)."""
        path = Path(tensorrt_int8)
        if path.name == self.int8("tensorrt").name:
            return self.trt_cache(path.parent)
        return path.with_name(path.name.removesuffix(".onnx") + TRT_CACHE_SUFFIX)

    def trt_caches(self) -> list[Path]:
        """The set's legacy caches beside the model: its own name first, then those named
        after a ``calibrate -o`` of this stem, newest first."""
        own = self.trt_cache()
        named = [
            p for p in self.model.parent.glob(f"{self.stem}.*{TRT_CACHE_SUFFIX}") if p != own
        ]
        named.sort(key=lambda p: p.stat().st_mtime, reverse=True)
        return ([own] if own.is_file() else []) + named

    def scratch_root(self, directory: Path | None = None) -> Path:
        """``DIR/.cache``: calibration's range cache (``calibration/``) and per-run scratch
        directories, beside the INT8 files it writes."""
        return (Path(directory) if directory else self.model.parent) / ".cache"

    def for_precision(self, precision: str, form: str = "cpu") -> Path:
        """The file that carries ``precision`` (the model itself for fp32)."""
        if precision == "fp32":
            return self.model
        if precision in ("fp16", "bf16"):
            return self.fp16 if precision == "fp16" else self.bf16
        return self.int8(form)

    def source_sha256(self) -> str:
        return sha256_file(self.model)

    def belongs(self, path: Path, made_for: str | None = None) -> bool:
        """``path`` exists and was made from this model (its recorded source sha256), and,
        with ``made_for``, for that calibration request (its recorded source key: a cached
        INT8 file of other data is not this request's)."""
        path = Path(path)
        if not path.is_file():
            return False
        metadata = _recorded(path)
        return metadata.get("source_sha256") == self.source_sha256() and (
            made_for is None or metadata.get("calibration_source_key") == made_for
        )

    def derived(self, precision: str, form: str = "cpu") -> Path:
        """The derived artifact for ``precision`` (and INT8 ``form``), checked to exist and to
        belong to this model; else an error naming the command that (re)makes it."""
        path = self.for_precision(precision, form)
        if precision == "fp32":
            return path
        fix = MAKES[Stage.making(precision, form)].format(model=self.model)
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
        files = {
            "fp16": self.fp16,
            "bf16": self.bf16,
            **{f"int8-{f}": self.int8(f) for f in INT8_FORMS},
        }
        return {name: path for name, path in files.items() if path.is_file()}


def _recorded(path: Path) -> dict[str, str]:
    """What a file records (:func:`metadata_values`), its weights left unread; a file that is
    not ONNX records nothing, so it belongs to no model. Read here, not through onnx_model
    (which asks this module for a file's stem: no import cycle)."""
    import onnx

    try:
        return metadata_values(onnx.load(str(path), load_external_data=False))
    except Exception:  # onnx raises DecodeError, ValueError, ... for bytes that are not ONNX
        return {}


def metadata_values(model) -> dict[str, str]:
    """An ONNX model's ``alexnet_deploy.*`` metadata, the prefix stripped: its card and its
    provenance (``source_sha256``, ...)."""
    from alexnet_deploy import constants as C

    return {
        p.key.removeprefix(C.METADATA_PREFIX): p.value
        for p in model.metadata_props
        if p.key.startswith(C.METADATA_PREFIX)
    }


def export_key(variant: str, weights: Path | None, seed: int) -> str:
    """The content key of a main-job export (its directory, :meth:`WorkDir.export`): variant,
    weights (their sha256), seed, opset and tool version."""
    import hashlib
    import json

    from alexnet_deploy import __version__
    from alexnet_deploy import constants as C

    text = json.dumps(
        {
            "variant": variant,
            "weights": sha256_file(weights) if weights else "untrained",
            "seed": seed,
            "opset": C.DEFAULT_OPSET,
            "tool": __version__,
        },
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class WorkDir:
    """The work directory's layout, the one place that knows it:

    * ``models/VARIANT-KEY/alexnet-VARIANT.onnx``: the main job's exports (KEY: content key of
      variant, weights, seed, opset and tool version), each with its artifact set beside it;
    * ``NAME.onnx``: a model ``import`` or ``export`` wrote (their default -o);
    * ``engines/BACKEND-PRECISION-ARTIFACTSHA-OPTIONS/``: built engines (sidecar engine.json);
    * ``reports/`` (bench), ``reports/tune/``, ``reports/gate-run/``; ``tuned.json``;
    * ``results.sqlite``: the embedded results store (store/db.py);
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

    def model(self, name: str) -> Path:
        """``NAME.onnx`` at the top: where ``import`` and ``export`` write a model unless told
        (-o), under the name every output gives it."""
        return self.root / f"{name}.onnx"

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
    def results_store(self) -> Path:
        """The embedded results store (SQLite) that ``--store default`` and ``store`` use."""
        return self.root / "results.sqlite"

    @property
    def cache(self) -> Path:
        return self.root / ".cache"
