"""package --triton: a Triton model repository from built artifacts.

One model per runtime and precision, each with a numbered version directory and a
config.pbtxt read from the artifact: ``onnxruntime_onnx`` for the FP32/FP16/INT8 ONNX files,
``openvino`` (IR converted by OpenVINO itself) where the openvino package is present, and
``tensorrt_plan`` for TensorRT engines that carry their sidecar. Written to a temporary
directory and renamed, so a failed run leaves nothing behind.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from alexnet_deploy.artifact import read_artifact
from alexnet_deploy.errors import AlexnetDeployError
from alexnet_deploy.serve.triton_config import (
    ServingOptions,
    build_config,
    check_dims,
    config_text,
    parse_config,
)

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
    check_dims(parse_config(text), info)  # round trip through Triton's schema
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
) -> Repository:
    from alexnet_deploy.engines.sidecar import Sidecar

    model, out = Path(model), Path(out)
    if out.exists() and not force:
        raise AlexnetDeployError(f"output {out} already exists", hint="pass --force to replace it")
    info = read_artifact(model)
    if info.precision != "fp32":
        raise AlexnetDeployError(
            f"{model} is {info.precision}; package starts from the FP32 export"
        )
    prefix = model.stem.replace("-", "_").replace(
        ".", "_"
    )  # alexnet-torchvision -> alexnet_torchvision
    labels = json.loads(info.metadata["class_names"]) if "class_names" in info.metadata else None
    artifacts = {
        "fp32": model,
        "fp16": model.with_name(f"{model.stem}.fp16.onnx"),
        "int8": model.with_name(f"{model.stem}.int8-cpu.onnx"),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    repo = Repository(out)
    try:
        with tempfile.TemporaryDirectory() as scratch:
            for precision, path in artifacts.items():
                if not path.is_file():
                    repo.skipped[f"{precision} onnx"] = (
                        f"{path} not found (make it with 'alexnet-deploy {'fp16' if precision == 'fp16' else 'calibrate'}')"
                    )
                    continue
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
            for sidecar_path in sorted((Path(work_dir) / "engines").glob("tensorrt-*/engine.json")):
                side = Sidecar.read(sidecar_path)
                plan = sidecar_path.parent / side.engine_file
                plan_info = read_artifact(Path(side.artifact))
                max_batch = int(side.details["profile"].split(":")[-1])
                plan_options = ServingOptions(
                    max_batch,
                    options.preferred_batch_sizes,
                    options.max_queue_delay_us,
                    options.instances,
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
            for plan in sorted((Path(work_dir) / "engines").glob("*/*.plan")):
                if not (plan.parent / "engine.json").is_file():
                    raise AlexnetDeployError(
                        f"TensorRT engine {plan} has no sidecar: its GPU, TensorRT version and profile are unknown",
                        hint="rebuild it with 'alexnet-deploy build --backend tensorrt'",
                    )
        if not repo.models:
            raise AlexnetDeployError(
                f"nothing to package for {model}", hint="export and build first"
            )
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    repo.models = [
        PackagedModel(m.name, m.kind, m.precision, m.source, out / m.name / "config.pbtxt")
        for m in repo.models
    ]
    return repo


def _has_openvino() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("openvino") is not None
    except (ImportError, ValueError):
        return False
