"""config.pbtxt for each packaged model, built as Triton's own protobuf message
(``tritonclient``'s ``model_config_pb2``) and checked by parsing it back: a field Triton does
not know fails here, not on the server. Names, types and dims come from the artifact."""

from __future__ import annotations

import re
from dataclasses import dataclass

from alexnet_deploy import constants as C
from alexnet_deploy.errors import AlexnetDeployError
from alexnet_deploy.onnx_model import ArtifactInfo

PLATFORMS = {"onnx": "onnxruntime_onnx", "plan": "tensorrt_plan"}
_TYPES = {
    "float32": "TYPE_FP32",
    "float16": "TYPE_FP16",
    "int8": "TYPE_INT8",
    "uint8": "TYPE_UINT8",
    "int64": "TYPE_INT64",
}


def triton_prefix(model_name: str) -> str:
    """The start of every Triton model (and config) name of a model: its name
    (ArtifactInfo.model_name) with each character a Triton model directory should not hold
    as '_' (alexnet-torchvision -> alexnet_torchvision, so the main job's names stay)."""
    return re.sub(r"[^A-Za-z0-9_]", "_", model_name)


def model_config_pb2():
    try:
        from tritonclient.grpc import model_config_pb2
    except ImportError:
        raise AlexnetDeployError(
            "tritonclient is not installed (its model_config_pb2 validates every config.pbtxt)",
            hint="pip install 'alexnet-deploy[triton]'",
        ) from None
    return model_config_pb2


@dataclass(frozen=True)
class ServingOptions:
    max_batch_size: int = C.DEFAULT_MAX_BATCH
    preferred_batch_sizes: tuple[int, ...] = C.TRITON_PREFERRED_BATCHES
    max_queue_delay_us: int = C.TRITON_QUEUE_DELAY_US
    instances: int = 1
    threads: int | None = None  # ONNX Runtime intra-op threads per instance
    # served at exactly this batch, unbatched by Triton (max_batch_size 0, dims [B, C, H, W]):
    # a TensorRT plan compiled for a static batch (its sidecar), or package --static-batch
    static_batch: int | None = None

    def __post_init__(self) -> None:
        if self.static_batch is not None and self.static_batch < 1:
            raise AlexnetDeployError(f"a static batch must be at least 1, got {self.static_batch}")


def build_config(
    name: str,
    kind: str,
    info: ArtifactInfo,
    options: ServingOptions,
    *,
    gpu: bool = False,
    trt_precision: str | None = None,
    backend: str | None = None,
):
    """The ModelConfig message. ``kind``: 'onnx', 'plan' or 'openvino'. A model whose graph
    fixes its batch at 1, or one served at a static batch, is served unbatched: max_batch_size
    0, its dims in full."""
    pb = model_config_pb2()
    spec = info.input
    max_batch_size = served_max_batch(info, options)
    config = pb.ModelConfig(name=name, max_batch_size=max_batch_size)
    if kind == "openvino":
        config.backend = "openvino"
    else:
        config.platform = PLATFORMS[kind]
    if backend:
        config.backend = backend
    inputs, outputs = served_dims(info, options.static_batch)
    config.input.append(
        pb.ModelInput(name=spec.name, data_type=getattr(pb, _TYPES[spec.dtype]), dims=inputs)
    )
    for out, dims in zip(info.outputs, outputs, strict=True):
        config.output.append(
            pb.ModelOutput(name=out.name, data_type=getattr(pb, _TYPES[out.dtype]), dims=dims)
        )
    if max_batch_size > 0:  # Triton batches only a model with a batch axis of its own
        preferred = [b for b in options.preferred_batch_sizes if b <= max_batch_size]
        config.dynamic_batching.CopyFrom(
            pb.ModelDynamicBatching(
                preferred_batch_size=preferred,
                max_queue_delay_microseconds=options.max_queue_delay_us,
            )
        )
    group_kind = pb.ModelInstanceGroup.KIND_GPU if gpu else pb.ModelInstanceGroup.KIND_CPU
    config.instance_group.append(pb.ModelInstanceGroup(kind=group_kind, count=options.instances))
    if kind == "onnx":
        if options.threads is not None:
            config.parameters["intra_op_thread_count"].string_value = str(options.threads)
        if gpu and trt_precision:
            accel = config.optimization.execution_accelerators.gpu_execution_accelerator.add()
            accel.name = "tensorrt"
            accel.parameters["precision_mode"] = trt_precision
            accel.parameters["max_workspace_size_bytes"] = str(C.TRT_WORKSPACE_MB << 20)
            accel.parameters["trt_engine_cache_enable"] = "1"
            accel.parameters["trt_engine_cache_path"] = "/tmp/triton_trt_cache"
    return config


def served_max_batch(info: ArtifactInfo, options: ServingOptions) -> int:
    """Triton's max_batch_size: the options' for a dynamic batch; 0 (no batching: Triton feeds
    the dims as they are) for a graph that fixes its batch at 1 or a static batch; a larger
    fixed batch refused (unless it is the static batch asked for)."""
    if options.static_batch is not None:
        refusal = info.batch_refusal(options.static_batch)
        if refusal:
            raise AlexnetDeployError(f"static batch {options.static_batch}: {refusal}")
        return 0
    needs = f"Triton's max_batch_size {options.max_batch_size} > 0 needs a dynamic batch axis"
    info.batch_for(1, f"{needs}, or a fixed batch of 1 (served with max_batch_size 0)")
    return 0 if info.fixed_batch == 1 else options.max_batch_size


def served_dims(
    info: ArtifactInfo, static_batch: int | None = None
) -> tuple[list[int], list[list[int]]]:
    """The config's input dims and each output's: without the batch axis where Triton batches
    (max_batch_size > 0), whole where the graph fixes the batch or the model is served at a
    static batch (max_batch_size 0)."""
    fixed = static_batch or info.fixed_batch
    lead = [] if fixed is None else [fixed]
    outputs = [[*lead, *(int(d) for d in out.dims[1:])] for out in info.outputs]
    return [*lead, *info.image_shape], outputs


def config_text(config) -> str:
    from google.protobuf import text_format

    return text_format.MessageToString(config)


def parse_config(text: str):
    """Parse with Triton's schema; an unknown field or a bad value raises, naming it."""
    from google.protobuf import text_format

    pb = model_config_pb2()
    try:
        return text_format.Parse(text, pb.ModelConfig())
    except text_format.ParseError as err:
        raise AlexnetDeployError(f"config.pbtxt does not match Triton's schema: {err}") from None


def check_dims(config, info: ArtifactInfo, static_batch: int | None = None) -> None:
    """The config's tensors against the artifact's (served at ``static_batch``, if given)."""
    spec, (inputs, outputs) = info.input, served_dims(info, static_batch)
    got = {(i.name, tuple(i.dims)) for i in config.input}
    want = {(spec.name, tuple(inputs))}
    if got != want:
        raise AlexnetDeployError(
            f"config inputs {sorted(got)} do not match the artifact's {sorted(want)}"
        )
    got_out = {(o.name, tuple(o.dims)) for o in config.output}
    want_out = {(o.name, tuple(dims)) for o, dims in zip(info.outputs, outputs, strict=True)}
    if got_out != want_out:
        raise AlexnetDeployError(
            f"config outputs {sorted(got_out)} do not match the artifact's {sorted(want_out)}"
        )
