"""import: any ONNX image classifier -> a copy that carries its model card.

The user's file is read, never written. The copy gets the card in its metadata, a dynamic batch
axis where the input's batch was fixed and the graph allows it (checked by running the copy at
batch 1 and 2 in ONNX Runtime), a leading Transpose where the input was NHWC (so the copy takes
NCHW, as every stage feeds it), and the labels. A model that is not an image classifier is
refused with one line saying what it has, before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from alexnet_deploy import constants as C
from alexnet_deploy.errors import AlexnetDeployError
from alexnet_deploy.modelcard import CardOptions, ModelCard, safe_name
from alexnet_deploy.progress import Progress

BATCH = "batch"
FLOAT32 = 1  # onnx.TensorProto.FLOAT: the FP32 model, that FP16 and INT8 are made from
MAX_PROTO_BYTES = 2_000_000_000  # protobuf's limit on one ONNX file without external data


@dataclass
class ImportResult:
    path: Path
    card: ModelCard
    sha256: str
    size_bytes: int
    notes: list[str] = field(default_factory=list)  # what the copy changed, one line each


def _dims(value) -> list:
    shape = value.type.tensor_type.shape
    return [d.dim_param or (d.dim_value if d.HasField("dim_value") else "?") for d in shape.dim]


def _type_name(value) -> str:
    import onnx

    return onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type).name


def load_foreign(path: Path):
    """The user's model with its weights, however they are stored (inline or external data
    beside it): refused with one line when it is not ONNX or its external data is missing."""
    import onnx

    from alexnet_deploy.onnx_model import load_model_proto

    model = load_model_proto(path, what="model") if _inline(path) else None
    if model is not None:
        return model
    try:
        model = onnx.load(str(path), load_external_data=False)
        external = [
            t.name for t in model.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL
        ]
        onnx.external_data_helper.load_external_data_for_model(model, str(path.parent))
    except Exception as err:  # onnx raises OSError, ValueError, its checker's ValidationError
        why = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise AlexnetDeployError(
            f"{path} keeps its weights in external data files that cannot be read ({why})",
            hint="keep the model's .data file(s) beside it, as the export wrote them",
        ) from None
    if sum(t.ByteSize() for t in model.graph.initializer) > MAX_PROTO_BYTES:
        raise AlexnetDeployError(
            f"{path}: its {len(external)} external weights exceed the 2 GB one ONNX file holds",
            hint="this tool keeps a model in one file; models over 2 GB are not supported",
        )
    return model


def _inline(path: Path) -> bool:
    """True when ``path`` is missing, not ONNX, or keeps every weight inline (the ordinary
    loader then says all there is to say)."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # not ONNX, or missing: load_model_proto words it
        return True
    return not any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)


def check_classifier(path: Path, model) -> tuple[str, list, list]:
    """Refuse, one line each, what is not an image classifier; returns (layout, input dims,
    output dims)."""
    weights = {t.name for t in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in weights]
    if len(inputs) != 1:
        names = ", ".join(repr(v.name) for v in inputs)
        raise AlexnetDeployError(
            f"{path} has {len(inputs)} inputs ({names}); an image classifier takes one image",
            hint="export the model with one image input [batch, 3, H, W]",
        )
    value, dims = inputs[0], _dims(inputs[0])
    if value.type.tensor_type.elem_type != FLOAT32:
        raise AlexnetDeployError(
            f"{path}: input {value.name!r} is {_type_name(value)}; this tool feeds float32 "
            "images (pixels preprocessed by the model card)",
            hint="import the model's FP32 export (normalized float32 [batch, 3, H, W] in); "
            "FP16 and INT8 are made from it",
        )
    if len(dims) != 4:
        raise AlexnetDeployError(
            f"{path}: input {value.name!r} has dims {dims}: not an image [batch, C, H, W] "
            "or [batch, H, W, C]",
            hint="this tool runs image classifiers (one image tensor of rank 4)",
        )
    if dims[1] == 3:
        layout = "NCHW"
    elif dims[3] == 3:
        layout = "NHWC"
    else:
        channels = (
            "a single channel (greyscale)" if 1 in (dims[1], dims[3]) else "no channel axis of 3"
        )
        raise AlexnetDeployError(
            f"{path}: input {value.name!r} has dims {dims}: {channels}; this tool feeds RGB "
            "images (3 channels, first or last after the batch)",
            hint="export the model with a 3-channel image input",
        )
    outputs = list(model.graph.output)
    if len(outputs) != 1:
        names = ", ".join(repr(v.name) for v in outputs)
        raise AlexnetDeployError(
            f"{path} has {len(outputs)} outputs ({names}); a classifier has one head "
            "[batch, classes]",
            hint="export the model with only its logits (or probabilities) as the output",
        )
    out, out_dims = outputs[0], _dims(outputs[0])
    if out.type.tensor_type.elem_type != FLOAT32:
        integer = np.issubdtype(np.dtype(_type_name(out)), np.integer)
        raise AlexnetDeployError(
            f"{path}: output {out.name!r} is {_type_name(out)}"
            + (" (a class index, not scores)" if integer else "")
            + "; this tool needs a float32 head of class scores",
            hint="export the model without its argmax: float32 logits [batch, classes] out"
            if integer
            else "import the model's FP32 export",
        )
    if len(out_dims) != 2 or not isinstance(out_dims[1], int) or out_dims[1] < 2:
        raise AlexnetDeployError(
            f"{path}: output {out.name!r} has dims {out_dims}; a classifier's is "
            "[batch, classes] with a fixed number of classes",
            hint="export the model with the class scores flattened to [batch, classes]",
        )
    return layout, dims, out_dims


def _set_dim(value, index: int, size) -> None:
    dim = value.type.tensor_type.shape.dim[index]
    if isinstance(size, str):
        dim.dim_param = size
    else:
        dim.dim_value = size


def wrap_nhwc(model) -> None:
    """Put a Transpose in front of an NHWC graph: the copy's input (same name) takes NCHW."""
    import onnx

    graph = model.graph
    value = _image_input(graph)
    name, inner = value.name, f"{value.name}__nhwc"
    for node in graph.node:
        node.input[:] = [inner if i == name else i for i in node.input]
    n, h, w, c = (value.type.tensor_type.shape.dim[i] for i in range(4))
    dims = [d.dim_param or d.dim_value for d in (n, c, h, w)]
    for i, size in enumerate(dims):
        _set_dim(value, i, size)
    graph.node.insert(
        0,
        onnx.helper.make_node("Transpose", [name], [inner], perm=[0, 2, 3, 1], name="nchw_to_nhwc"),
    )


def _run(path: Path, batch: int, shape: tuple, classes: int) -> Exception | None:
    """Why ONNX Runtime cannot run ``path`` at ``batch`` (None: it runs, right output shape)."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        out = session.run(None, {name: np.zeros((batch, *shape), np.float32)})[0]
    except Exception as err:  # ORT raises its own Fail/InvalidGraph/RuntimeException types
        return err
    if tuple(out.shape) != (batch, classes):
        return ValueError(
            f"output shape {list(out.shape)} at batch {batch}, expected [{batch}, {classes}]"
        )
    return None


def import_model(
    model: Path,
    output: Path | None = None,
    options: CardOptions | None = None,
    *,
    force: bool = False,
    progress: Progress = lambda _msg: None,
) -> ImportResult:
    """Write a copy of ``model`` with the card ``options`` describe (a preset and the fields
    given over it; the input size, when not given, is the graph's) to ``output`` (default:
    ``work/NAME.onnx``), checked in ONNX Runtime at batch 1 and 2; ``model`` is only read."""
    import onnx

    from alexnet_deploy.calib.stage import write_artifact_metadata
    from alexnet_deploy.engines.base import runtime_error
    from alexnet_deploy.fileio import atomic_path, require_free_space, sha256_file
    from alexnet_deploy.outputs import check_outputs

    model, options = Path(model), options or CardOptions()
    name = options.name or safe_name(model.name.split(".")[0])
    out = Path(output) if output is not None else Path(C.DEFAULT_WORK_DIR) / f"{name}.onnx"
    check_outputs("import", {"-o": out}, {"input model": model}, force=force)
    progress("reading the model")
    proto = load_foreign(model)
    layout, dims, out_dims = check_classifier(model, proto)
    height_width = (dims[2], dims[3]) if layout == "NCHW" else (dims[1], dims[2])
    graph_size = height_width[0] if isinstance(height_width[0], int) else None
    card = options.card(default_name=name, graph_size=graph_size)
    card = replace(card, layout=layout).check_model(height_width, out_dims[1])
    notes = []
    if layout == "NHWC":
        wrap_nhwc(proto)
        notes.append("input NHWC: the copy has a Transpose in front and takes NCHW")
    value = _image_input(proto.graph)
    for axis in (2, 3):  # a symbolic H or W: fixed to the card's size (stages need it fixed)
        if not isinstance(_dims(value)[axis], int):
            _set_dim(value, axis, card.input_size)
    fixed_batch = dims[0] if isinstance(dims[0], int) and dims[0] > 0 else None
    write_artifact_metadata(proto, {**card.to_metadata(), "precision": "fp32"})
    require_free_space(out.parent, proto.ByteSize() + (1 << 20), what="the imported model")
    shape, classes = (3, card.input_size, card.input_size), out_dims[1]
    with atomic_path(out, replace=force) as tmp:
        if fixed_batch is not None:
            progress(f"making the fixed batch of {fixed_batch} dynamic")
            notes.append(_make_batch_dynamic(proto, tmp, fixed_batch, shape, classes))
        onnx.save(proto, str(tmp))
        progress("checking the copy in ONNX Runtime at batch 1 and 2")
        for batch in (1, 2) if _batch_is_dynamic(proto) else (fixed_batch,):
            failure = _run(tmp, batch, shape, classes)
            if failure is not None:
                raise runtime_error("ONNX Runtime", "run", model, failure)
        digest, size = sha256_file(tmp), tmp.stat().st_size
    return ImportResult(out, card, digest, size, notes)


def _image_input(graph):
    weights = {t.name for t in graph.initializer}
    return next(v for v in graph.input if v.name not in weights)


def _batch_is_dynamic(proto) -> bool:
    return not isinstance(_dims(_image_input(proto.graph))[0], int)


def _make_batch_dynamic(proto, scratch: Path, batch: int, shape: tuple, classes: int) -> str:
    """The input's and output's first axis made symbolic where the graph then runs at batch 1
    and 2 (ONNX Runtime on a trial copy); else the batch is kept, and the line says so."""
    import onnx

    trial = onnx.ModelProto()
    trial.CopyFrom(proto)
    _set_dim(_image_input(trial.graph), 0, BATCH)
    _set_dim(trial.graph.output[0], 0, BATCH)
    del trial.graph.value_info[:]  # inferred shapes that carry the fixed batch
    onnx.save(trial, str(scratch))
    failures = [
        str(why).splitlines()[0] for b in (1, 2) if (why := _run(scratch, b, shape, classes))
    ]
    if failures:
        return f"batch: the graph fixes it at {batch} ({failures[0]}); the copy keeps batch {batch}"
    proto.CopyFrom(trial)
    return f"batch: fixed at {batch} in the model, dynamic in the copy (ran at batch 1 and 2)"
