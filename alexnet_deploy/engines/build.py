"""build: (FP32 model or precision artifact, backend, precision, options) -> engine on disk.

The artifact for a precision is the FP32 export's sibling (alexnet_deploy/artifacts.py, checked
to belong to that export), or the model itself when its metadata says it carries that precision. Engines are cached by content: the directory name
holds the artifact's sha256 and the options' hash, so an unchanged build is reused.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import replace
from pathlib import Path

from alexnet_deploy.artifacts import ArtifactSet, WorkDir
from alexnet_deploy.engines.base import Engine
from alexnet_deploy.engines.options import BuildOptions
from alexnet_deploy.engines.registry import get_backend
from alexnet_deploy.engines.sidecar import Sidecar
from alexnet_deploy.errors import AlexnetDeployError, UsageError
from alexnet_deploy.fileio import replace_directory, sha256_file, staging_directory
from alexnet_deploy.locking import directory_lock
from alexnet_deploy.onnx_model import ENGINE_BATCH, ArtifactInfo, read_artifact

log = logging.getLogger(__name__)


def int8_form(backend: str) -> str:
    """The INT8 file a backend runs: TensorRT (native, or ONNX Runtime's TensorRT provider)
    takes the symmetric Q/DQ form as explicit quantization; the rest the CPU form."""
    return "tensorrt" if backend in ("tensorrt", "ort-trt") else "cpu"


def int8_file_form(backend: str, quantizer: str = "qdq") -> str:
    """Which INT8 file of the artifact set ``backend`` runs: NNCF's, or the tool's form."""
    return "nncf" if quantizer == "nncf" else int8_form(backend)


def resolve_artifact(model: Path, precision: str, backend: str, quantizer: str = "qdq") -> Path:
    """The file that carries ``precision`` for ``backend``, or an error naming the command
    that makes it. bf16 on a CPU runtime is the FP32 model, run in bf16 (calib/bf16.py)."""
    from alexnet_deploy.engines.registry import GPU_BACKENDS

    model = Path(model)
    info = read_artifact(model)
    if precision == "bf16" and backend not in GPU_BACKENDS and info.precision == "fp32":
        return model
    if info.precision == precision and precision == "int8":
        made_by = info.metadata.get("int8_quantizer", "qdq")
        if made_by != quantizer:
            raise UsageError(
                f"{model} was quantized by {made_by}, not {quantizer}",
                hint=f"pass --quantizer {made_by}, or the FP32 model",
            )
    if info.precision == precision:
        if precision == "int8" and info.metadata.get(
            "int8_target", int8_form(backend)
        ) != int8_form(backend):
            raise UsageError(
                f"{model} is the {info.metadata['int8_target']} INT8 form; {backend} needs the "
                f"{int8_form(backend)} form",
                hint=f"pass {model.name.replace(info.metadata['int8_target'], int8_form(backend))}",
            )
        return model
    if info.precision != "fp32":
        raise UsageError(
            f"{model} carries {info.precision}, not {precision}",
            hint="pass the FP32 model, or the artifact of the precision you want",
        )
    return ArtifactSet(model).derived(precision, int8_file_form(backend, quantizer))


def check_artifact_contract(info: ArtifactInfo) -> None:
    """One float32 NCHW image input with a dynamic batch axis (or a batch the graph fixes at
    1: the engine runs one image at a time), [batch, classes] logits."""
    info.require_float_input()
    spec = info.input
    if spec.dtype != "float32" or len(spec.dims) != 4:
        raise AlexnetDeployError(
            f"{info.path}: input {spec.name!r} is {spec.dtype} {list(spec.dims)}, expected float32 [batch, C, H, W]"
        )
    info.batch_for(1, ENGINE_BATCH)
    info.image_shape  # noqa: B018 - raises for symbolic C/H/W
    out = info.outputs[0]
    if len(out.dims) != 2:
        raise AlexnetDeployError(
            f"{info.path}: output {out.name!r} has dims {list(out.dims)}, expected [batch, classes]"
        )


def check_precision(backend_name: str, precision: str) -> None:
    """Refuse a precision ``backend_name`` does not run, with its reason; bf16 on a runtime of
    this CPU also needs the CPU's native BF16 (never emulated: cpu_isa.require_native_bf16)."""
    from alexnet_deploy.cpu_isa import require_native_bf16
    from alexnet_deploy.engines.registry import GPU_BACKENDS

    backend = get_backend(backend_name)
    if precision not in backend.precisions:
        why = backend.refuses.get(precision)
        raise UsageError(
            f"backend {backend_name!r} runs {', '.join(backend.precisions)}, not {precision}"
            + (f": {why}" if why else ""),
            hint="bf16 runs on openvino and torch (CPU), tensorrt, ort-trt and ort-cuda (GPU)"
            if precision == "bf16"
            else None,
        )
    if precision == "bf16" and backend_name not in GPU_BACKENDS:
        require_native_bf16()


def check_plan_float(info: ArtifactInfo, backend_name: str) -> None:
    """A plan file whose float layers run bf16 (``plan --keep bf16``: FP32 as written, run in
    bf16 by OpenVINO's precision hint) builds on OpenVINO alone, on a CPU with native BF16:
    any other runtime would compute those layers in the file's FP32 while the plan says bf16."""
    from alexnet_deploy.calib.bf16 import plan_bf16_layers
    from alexnet_deploy.cpu_isa import require_native_bf16

    if not plan_bf16_layers(info.metadata):
        return
    if backend_name != "openvino":
        why = get_backend(backend_name).refuses.get("bf16") or "it runs the types the file holds"
        raise UsageError(
            f"{info.path.name} is a plan whose float layers run bf16 through OpenVINO's precision "
            f"hint; {backend_name} would compute them in FP32: {why}",
            hint="build it with --backend openvino, or plan again with --keep fp32",
        )
    require_native_bf16()


def check_engine_shape(backend_name: str, options: BuildOptions, info: ArtifactInfo) -> None:
    """Refuse a static batch a backend cannot compile, or the graph does not take (a graph that
    fixes its batch is static already, at that batch)."""
    if options.static_batch is None:
        return
    why = get_backend(backend_name).no_static_batch
    if why:
        raise UsageError(
            f"backend {backend_name!r} cannot build a static batch: {why}",
            hint="drop --static-batch, or build it on ort, openvino or tensorrt",
        )
    refusal = info.batch_refusal(options.static_batch)
    if refusal:
        raise UsageError(f"--static-batch {options.static_batch}: {refusal}")


def float_precision_refusal(backend_name: str, wanted: str) -> str | None:
    """Why ``backend_name`` cannot run an INT8 engine's float parts in ``wanted`` (None: it
    can): only OpenVINO's precision hint does; any other runtime runs the types the file holds."""
    backend = get_backend(backend_name)
    if wanted in backend.float_precisions:
        return None
    why = backend.refuses.get(wanted) or "it runs the float types the file holds"
    return f"backend {backend_name!r} cannot run an INT8 engine's float parts in {wanted}: {why}"


def check_float_precision(backend_name: str, options: BuildOptions) -> None:
    """An INT8 engine's float parts in bf16: OpenVINO, where the CPU has native BF16 (never
    emulated: cpu_isa.require_native_bf16)."""
    from alexnet_deploy.cpu_isa import require_native_bf16

    if options.float_precision is None:
        return
    why = float_precision_refusal(backend_name, options.float_precision)
    if why:
        raise UsageError(why, hint="build it with --backend openvino, or drop --float-precision")
    require_native_bf16()


def engine_dir(
    work_dir: Path, backend: str, precision: str, artifact_sha: str, options: BuildOptions
) -> Path:
    return WorkDir(work_dir).engine(backend, precision, artifact_sha, options.key())


def engine_source(model: Path, backend_name: str, options: BuildOptions) -> Path:
    """The ONNX file an engine of ``options`` is built from, for this request. A reused engine
    is found by that file's content, so the path in its sidecar may be where an identical file
    was when it was built (since moved or deleted): callers use this one."""
    # the legacy TensorRT 10 path quantizes the FP32 network itself, from the calibration cache
    if options.legacy_int8:
        return Path(model)
    return resolve_artifact(model, options.precision, backend_name, options.quantizer)


def build_engine(
    model: Path, backend_name: str, options: BuildOptions, work_dir: Path, *, rebuild: bool = False
) -> tuple[Engine, bool]:
    """Return ``(engine, reused)``. A failed build leaves no directory behind. One run at a
    time builds into a work directory (a second waits, then reuses the first one's engine)."""
    backend = get_backend(backend_name)
    backend.capability().require(backend_name)
    check_precision(backend_name, options.precision)
    check_float_precision(backend_name, options)
    for knob in options.knobs_set():
        if knob not in backend.knobs:
            raise UsageError(
                f"--{knob.replace('_', '-')} is not a setting of backend {backend_name!r}",
                hint=f"{backend_name} takes: {', '.join('--' + k.replace('_', '-') for k in backend.knobs) or 'none of these settings'}",
            )
    if options.portable() and backend_name != "tensorrt":
        raise UsageError(
            "--hardware-compat and --version-compatible are TensorRT plan options",
            hint=f"drop them for backend {backend_name!r}",
        )
    if options.quantizer not in backend.quantizers:
        raise UsageError(
            f"backend {backend_name!r} runs INT8 from {', '.join(backend.quantizers)}, not {options.quantizer}"
        )
    artifact = engine_source(model, backend_name, options)
    info = read_artifact(artifact)
    check_artifact_contract(info)
    check_engine_shape(backend_name, options, info)
    # a graph that fixes its batch at 1 gets an engine for that batch alone
    options = replace(options, max_batch=info.batch_for(options.max_batch, ENGINE_BATCH))
    check_plan_float(info, backend_name)
    warn_isa_mismatch(info, model)
    digest = sha256_file(artifact)
    target = engine_dir(work_dir, backend_name, options.precision, digest, options)
    with directory_lock(work_dir, "build"):
        return _engine_at(target, artifact, backend, options, rebuild=rebuild)


def _engine_at(
    target: Path, artifact: Path, backend, options: BuildOptions, *, rebuild: bool
) -> tuple[Engine, bool]:
    """The engine in ``target``: the one there if it loads (and ``rebuild`` is off), else a
    new one built from ``artifact``."""
    if target.is_dir() and not rebuild:
        try:
            engine = load_engine(target)
            # the runner checks runtime version, machine and the engine's sha256 (cached per
            # file version) when made; it loads the engine only when activated, by its user
            backend.runner(engine)
            return engine, True
        except AlexnetDeployError:
            pass  # stale or foreign: rebuild below
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_directory(target)
    try:
        backend.build(artifact, options, staging)
        # a concurrent build that put its engine there first is as good as ours: ours dropped
        replace_directory(staging, target, concurrent_ok=lambda t: (t / "engine.json").is_file())
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return load_engine(target), False


_warned: set[tuple[str, str]] = set()


def warn_isa_mismatch(info: ArtifactInfo, model: Path) -> str | None:
    """Warn (once per artifact and run) when an INT8 CPU form was made for another CPU class
    than this one; return the warning."""
    from alexnet_deploy.calib.int8 import isa_mismatch
    from alexnet_deploy.cpu_isa import this_cpu

    source = Path(model)
    if source.resolve() == info.path.resolve():  # given the INT8 file: name its FP32 model
        source = ArtifactSet.of(source).model
        if not source.is_file() or source.resolve() == info.path.resolve():
            source = Path("FP32_MODEL.onnx")  # a file named outside the set's rule
    text = isa_mismatch(info.metadata, this_cpu().name, str(source))
    if text and (str(info.path), text) not in _warned:
        _warned.add((str(info.path), text))
        log.warning("Warning: %s: %s", info.path.name, text)
    return text


def load_engine(directory: Path) -> Engine:
    """An engine from its directory (sidecar ``engine.json`` + engine file)."""
    directory = Path(directory)
    sidecar_path = directory / "engine.json" if directory.is_dir() else directory
    sidecar = Sidecar.read(sidecar_path)
    engine_file = Path(sidecar.engine_file)
    path = engine_file if engine_file.is_absolute() else sidecar_path.parent / engine_file
    return Engine(sidecar.backend, path, sidecar, sidecar_path)
