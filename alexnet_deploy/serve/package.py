"""package --triton: a Triton model repository from built artifacts.

One model per runtime and precision, each with a numbered version directory and a
config.pbtxt read from the artifact: ``onnxruntime_onnx`` for the FP32/FP16/INT8 ONNX files,
``openvino`` (IR converted by OpenVINO itself) where the openvino package is present, and
``tensorrt_plan`` for TensorRT engines that carry their sidecar. Written to a temporary
directory and renamed, so a failed run leaves nothing behind.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from alexnet_deploy.artifacts import ArtifactSet, WorkDir
from alexnet_deploy.engines.sidecar import Sidecar
from alexnet_deploy.errors import AlexnetDeployError
from alexnet_deploy.fileio import replace_directory, staging_directory
from alexnet_deploy.locking import directory_lock
from alexnet_deploy.onnx_model import read_artifact
from alexnet_deploy.outputs import OutputDir, check_outputs, mark_directory
from alexnet_deploy.serve.triton_config import (
    ServingOptions,
    build_config,
    check_dims,
    config_text,
    parse_config,
    triton_prefix,
)
from alexnet_deploy.serve.triton_tensorrt import check_plan_for_server

VERSION = "1"


@dataclass
class PackagedModel:
    name: str
    kind: str
    precision: str
    source: str
    config_path: Path


@dataclass
class Repository:
    path: Path
    models: list[PackagedModel] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # each TensorRT plan: where it runs


def _add(
    staging: Path,
    name: str,
    kind: str,
    info,
    source: Path,
    options: ServingOptions,
    files: dict[str, Path],
    *,
    gpu: bool = False,
    precision: str = "fp32",
    labels: list[str] | None = None,
) -> PackagedModel:
    config = build_config(name, kind, info, options, gpu=gpu)
    if labels:
        config.output[0].label_filename = "labels.txt"
    text = config_text(config)
    check_dims(parse_config(text), info, options.static_batch)  # through Triton's schema
    model_dir = staging / name
    (model_dir / VERSION).mkdir(parents=True)
    for target, src in files.items():
        shutil.copy2(src, model_dir / VERSION / target)
    (model_dir / "config.pbtxt").write_text(text)
    if labels:
        (model_dir / "labels.txt").write_text("\n".join(labels) + "\n")
    return PackagedModel(name, kind, precision, str(source), model_dir / "config.pbtxt")


def _openvino_ir(onnx_path: Path, out_dir: Path) -> dict[str, Path]:
    import openvino as ov

    xml = out_dir / "model.xml"
    ov.save_model(ov.Core().read_model(str(onnx_path)), str(xml), compress_to_fp16=False)
    return {"model.xml": xml, "model.bin": out_dir / "model.bin"}


def package_triton(
    model: Path,
    out: Path,
    *,
    work_dir: Path,
    options: ServingOptions,
    force: bool = False,
    openvino: bool = True,
    server_tensorrt: str | None = None,
) -> Repository:
    """``server_tensorrt``: the TensorRT version of the target Triton server; a TensorRT plan
    it cannot run is refused (serve/triton_tensorrt.py). ``out`` is replaced only with
    ``force`` and only when it is a repository this tool made (its marker)."""
    model, out = Path(model), Path(out)
    check_repository(out, model, work_dir=work_dir, force=force)
    with directory_lock(work_dir, "package"):  # the engines; and one package at a time
        check_repository(out, model, work_dir=work_dir, force=force)  # written meanwhile?
        return _package(model, out, work_dir, options, force, openvino, server_tensorrt)


def check_repository(out: Path, model: Path | None, *, work_dir: Path, force: bool) -> None:
    """Refuse a repository path that would destroy an input, the current or work directory,
    or a directory this tool did not make (outputs.py)."""
    check_outputs(
        "package", {"--triton": OutputDir(out, replaced=True)}, {"input model": model},
        work_dir=work_dir, force=force,
    )  # fmt: skip


def _package(
    model: Path, out: Path, work_dir: Path, options: ServingOptions, force: bool,
    openvino: bool, server_tensorrt: str | None,
) -> Repository:  # fmt: skip
    info = read_artifact(model)
    if info.precision != "fp32":
        raise AlexnetDeployError(
            f"{model} is {info.precision}; package starts from the FP32 export"
        )
    prefix = triton_prefix(info.model_name)
    labels = list(info.labels) if info.labels else None  # the model card's (import --labels)
    siblings = ArtifactSet(model)
    artifacts = {p: siblings.for_precision(p) for p in ("fp32", "fp16", "int8")}
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_directory(out)
    repo = Repository(out)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            for precision, path in artifacts.items():
                if not path.is_file():
                    command = "fp16" if precision == "fp16" else "calibrate"
                    repo.skipped[f"{precision} onnx"] = (
                        f"{path} not found (make it with 'alexnet-deploy {command} {model}')"
                    )
                    continue
                if precision != "fp32":
                    siblings.derived(precision)  # made from this model, or the command to remake it
                artifact = read_artifact(path)
                repo.models.append(
                    _add(
                        staging,
                        f"{prefix}_{precision}_onnx",
                        "onnx",
                        artifact,
                        path,
                        options,
                        {"model.onnx": path},
                        precision=precision,
                        labels=labels,
                    )
                )
                if openvino and _has_openvino():
                    ir_dir = Path(scratch) / precision
                    ir_dir.mkdir()
                    repo.models.append(
                        _add(
                            staging,
                            f"{prefix}_{precision}_openvino",
                            "openvino",
                            artifact,
                            path,
                            options,
                            _openvino_ir(path, ir_dir),
                            precision=precision,
                            labels=labels,
                        )
                    )
            for sidecar_path, side in _tensorrt_engines(Path(work_dir), siblings, repo):
                plan = sidecar_path.parent / side.engine_file
                repo.notes.append(check_plan_for_server(str(plan), side, server_tensorrt))
                plan_info = read_artifact(Path(side.artifact))
                max_batch = _profile_max(side, sidecar_path)
                plan_options = ServingOptions(
                    max_batch,
                    options.preferred_batch_sizes,
                    options.max_queue_delay_us,
                    options.instances,
                    static_batch=_plan_static_batch(side, sidecar_path),
                )
                repo.models.append(
                    _add(
                        staging,
                        f"{prefix}_{side.precision}_trt",
                        "plan",
                        plan_info,
                        plan,
                        plan_options,
                        {"model.plan": plan},
                        gpu=True,
                        precision=side.precision,
                        labels=labels,
                    )
                )
            for plan in sorted(WorkDir(work_dir).engines.glob("*/*.plan")):
                if not (plan.parent / "engine.json").is_file():
                    raise AlexnetDeployError(
                        f"TensorRT engine {plan} has no sidecar: its GPU, TensorRT version and profile are unknown",
                        hint="rebuild it with 'alexnet-deploy build --backend tensorrt'",
                    )
        if not repo.models:
            raise AlexnetDeployError(
                f"nothing to package for {model}", hint="export and build first"
            )
        mark_directory(staging, "package", complete=True)
        replace_directory(staging, out, replace=force)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    repo.models = [
        PackagedModel(m.name, m.kind, m.precision, m.source, out / m.name / "config.pbtxt")
        for m in repo.models
    ]
    return repo


def _tensorrt_engines(work_dir: Path, siblings, repo: Repository) -> list:
    """(sidecar path, sidecar) of the TensorRT engines built from this model's artifacts, one
    per precision: the newest; older ones and other models' engines are left out (listed in
    ``repo.skipped``), so two plans never map to one Triton model name."""
    from alexnet_deploy.fileio import sha256_file

    def shas(*paths: Path) -> set[str]:
        return {sha256_file(p) for p in paths if p.is_file()}

    ours = {  # precision -> the files its engines may be built from
        "fp32": shas(siblings.model),
        "fp16": shas(siblings.fp16),
        "int8": shas(siblings.int8("tensorrt"), siblings.model),  # the model: --legacy-int8
    }
    found = sorted(WorkDir(work_dir).engines_of("tensorrt"), key=lambda p: p.stat().st_mtime_ns)
    newest: dict[str, tuple[Path, Sidecar]] = {}
    for sidecar_path in found:
        side = Sidecar.read(sidecar_path)
        if side.artifact_sha256 not in ours.get(side.precision, set()):
            continue  # another model's engine
        if side.precision in newest:
            repo.skipped[f"{newest[side.precision][0].parent.name}"] = (
                f"an older {side.precision} TensorRT engine of this model; packaged the newest, "
                f"{sidecar_path.parent.name}"
            )
        newest[side.precision] = (sidecar_path, side)
    return list(newest.values())


def _profile_max(side: Sidecar, sidecar_path: Path) -> int:
    try:
        return int(str(side.details["profile"]).split(":")[-1])
    except (KeyError, ValueError):
        raise AlexnetDeployError(
            f"TensorRT sidecar {sidecar_path} has no readable optimization profile "
            f"(details.profile = {side.details.get('profile')!r})",
            hint="rebuild the engine with 'alexnet-deploy build --backend tensorrt'",
        ) from None


def _plan_static_batch(side: Sidecar, sidecar_path: Path) -> int | None:
    """The one batch a TensorRT plan was compiled for (its profile N:N:N, recorded as its
    options' static_batch), served as is; None for a batch range. The sidecar's input shape
    and profile must agree, or the plan is refused."""
    static = side.options.get("static_batch")
    shape = side.input_shape
    recorded = None if shape is None else shape[0]
    if static is not None and (
        (shape is not None and recorded != static)
        or str(side.details.get("profile")) != f"{static}:{static}:{static}"
    ):
        raise AlexnetDeployError(
            f"TensorRT sidecar {sidecar_path} disagrees with itself: static batch {static}, "
            f"input shape {shape}, profile {side.details.get('profile')!r}",
            hint="rebuild the engine with 'alexnet-deploy build --backend tensorrt'",
        )
    return static


def _has_openvino() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("openvino") is not None
    except (ImportError, ValueError):
        return False
