"""import: any ONNX image classifier -> a copy that carries its model card.

The user's file is read, never written. The copy gets the card in its metadata, a dynamic batch
axis where the input's batch was fixed and the graph allows it (checked by running the copy at
batch 1 and 2 in ONNX Runtime), a leading Transpose where the input was NHWC (so the copy takes
NCHW, as every stage feeds it), and the labels. A model that is not an image classifier is
refused with one line saying what it has, before anything is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from alexnet_deploy import constants as C
from alexnet_deploy.artifacts import WorkDir, metadata_values, stem_of
from alexnet_deploy.errors import AlexnetDeployError
from alexnet_deploy.modelcard import LAYOUTS, CardOptions, ModelCard, safe_name
from alexnet_deploy.progress import Progress

BATCH = "batch"
FLOAT32 = 1  # onnx.TensorProto.FLOAT: the FP32 model, that FP16 and INT8 are made from
MAX_PROTO_BYTES = 2_000_000_000  # protobuf's limit on one ONNX file without external data
# What a model made from the FP32 one holds: quantized nodes (Q/DQ pairs, ONNX Runtime's integer
# kernels; any "QLinear..." operator too) and 16-bit float weights (onnx.TensorProto's types)
QUANTIZED_OPS = ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "ConvInteger",
                 "MatMulInteger")  # fmt: skip
HALF_TYPES = {10: "FP16", 16: "BF16"}
NHWC_TRANSPOSE = "nchw_to_nhwc"  # the node in front of an NHWC model's copy
# ONNX Runtime's line for a node that failed: "... running Gemm node. Name:'/fc/Gemm' Status
# Message: GEMM: Dimension mismatch, ..."
ORT_NODE_FAILURE = re.compile(
    r"running (?P<op>\S+) node\. Name:'(?P<name>[^']*)' Status Message: (?P<why>.*)"
)


@dataclass
class ImportResult:
    path: Path
    card: ModelCard
    sha256: str
    size_bytes: int
    notes: list[str] = field(default_factory=list)  # what the copy changed, one line each
    warnings: list[str] = field(default_factory=list)  # what the copy could not change


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

    missing = "check the path: import reads your ONNX model (from torch.onnx.export, say)"
    model = load_model_proto(path, missing_hint=missing) if _inline(path) else None
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
    if len(dims) == 3 and 3 in (dims[0], dims[2]):
        raise AlexnetDeployError(
            f"{path}: input {value.name!r} has dims {dims}: one image with no batch axis",
            hint="export the model with a leading dynamic batch axis, [batch, 3, H, W]: e.g. "
            f"torch.onnx.export(..., dynamic_axes={{{value.name!r}: {{0: 'batch'}}}})",
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


def check_fp32(path: Path, model) -> None:
    """Refuse a model already made from an FP32 one (quantized, FP16, BF16, a precision plan):
    the copy is the FP32 model every other precision is made from, and is labelled so."""
    ops = {n.op_type for n in model.graph.node}
    quantized = sorted(op for op in ops if op in QUANTIZED_OPS or op.startswith("QLinear"))
    constants = [a.t for n in model.graph.node if n.op_type == "Constant" for a in n.attribute]
    half = sorted(
        {
            HALF_TYPES[t.data_type]
            for t in [*model.graph.initializer, *constants]
            if t.data_type in HALF_TYPES
        }
    )
    if quantized or half:
        what = (
            f"quantized nodes ({', '.join(quantized)})"
            if quantized
            else f"{' and '.join(half)} weights"
        )
        raise AlexnetDeployError(
            f"{path} already holds {what}: import takes the FP32 model, which every other "
            "precision is made from",
            hint="import the FP32 model; calibrate/fp16/bf16 make those variants from the copy",
        )


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
        onnx.helper.make_node("Transpose", [name], [inner], perm=[0, 2, 3, 1], name=NHWC_TRANSPOSE),
    )


def _run(path: Path, batch: int, shape: tuple, classes: int) -> Exception | None:
    """Why ONNX Runtime cannot run ``path`` at ``batch`` (None: it runs, right output shape)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 4  # a failure is returned and worded here, not logged too
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
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
    work_dir: Path = Path(C.DEFAULT_WORK_DIR),
) -> ImportResult:
    """Write a copy of ``model`` with the card ``options`` describe (a preset and the fields
    given over it; the input size, when not given, is the graph's) to ``output`` (default:
    ``WORK_DIR/NAME.onnx``), checked in ONNX Runtime at batch 1 and 2; ``model`` is only read."""
    import onnx

    from alexnet_deploy.calib.stage import write_artifact_metadata
    from alexnet_deploy.engines.base import runtime_error
    from alexnet_deploy.fileio import atomic_path, require_free_space, sha256_file
    from alexnet_deploy.outputs import check_outputs

    model, options = Path(model), options or CardOptions()
    name = options.name or safe_name(stem_of(model))  # resnet50.v1.5.onnx: resnet50.v1.5
    out = Path(output) if output is not None else WorkDir(work_dir).model(name)
    check_outputs("import", {"-o": out}, {"input model": model}, force=force)
    progress("reading the model")
    proto = load_foreign(model)
    layout, dims, out_dims = check_classifier(model, proto)
    check_fp32(model, proto)
    # an imported NHWC copy takes NCHW (our Transpose in front): keep the layout it recorded
    recorded = metadata_values(proto).get("layout")
    wrapped = any(n.name == NHWC_TRANSPOSE and n.op_type == "Transpose" for n in proto.graph.node)
    height_width = (dims[2], dims[3]) if layout == "NCHW" else (dims[1], dims[2])
    graph_size = height_width[0] if isinstance(height_width[0], int) else None
    card = options.card(default_name=name, graph_size=graph_size)
    kept = recorded if layout == "NCHW" and wrapped and recorded in LAYOUTS else layout
    card = replace(card, layout=kept).check_model(height_width, out_dims[1])
    notes, warnings = [], []
    if layout == "NHWC":
        wrap_nhwc(proto)
        notes.append("input NHWC: the copy has a Transpose in front and takes NCHW")
    value = _image_input(proto.graph)
    for axis in (2, 3):  # a symbolic H or W: fixed to the card's size (stages need it fixed)
        if not isinstance(_dims(value)[axis], int):
            _set_dim(value, axis, card.input_size)
    fixed_batch = dims[0] if isinstance(dims[0], int) and dims[0] > 0 else None
    # the copy's metadata is its card alone: nothing another tool run recorded in the file
    # (a variant, weights, a source, a plan, a precision) describes the copy
    kept_props = [p for p in proto.metadata_props if not p.key.startswith(C.METADATA_PREFIX)]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept_props)
    write_artifact_metadata(proto, {**card.to_metadata(), "precision": "fp32"})
    require_free_space(out.parent, proto.ByteSize() + (1 << 20), what="the imported model")
    shape, classes = (3, card.input_size, card.input_size), out_dims[1]
    with atomic_path(out, replace=force) as tmp:
        if fixed_batch is not None:
            progress(f"making the fixed batch of {fixed_batch} dynamic")
            failure = _make_batch_dynamic(proto, tmp, fixed_batch, shape, classes)
            if failure is None:
                notes.append(
                    f"batch: fixed at {fixed_batch} in the model, dynamic in the copy (ran at "
                    "batch 1 and 2)"
                )
            else:
                warnings.append(kept_batch_warning(fixed_batch, *failure))
        onnx.save(proto, str(tmp))
        progress("checking the copy in ONNX Runtime at batch 1 and 2")
        for batch in (1, 2) if _batch_is_dynamic(proto) else (fixed_batch,):
            failure = _run(tmp, batch, shape, classes)
            if failure is not None:
                raise runtime_error("ONNX Runtime", "run", model, failure)
        digest, size = sha256_file(tmp), tmp.stat().st_size
    return ImportResult(out, card, digest, size, notes, warnings)


def _image_input(graph):
    weights = {t.name for t in graph.initializer}
    return next(v for v in graph.input if v.name not in weights)


def _batch_is_dynamic(proto) -> bool:
    return not isinstance(_dims(_image_input(proto.graph))[0], int)


def _make_batch_dynamic(
    proto, scratch: Path, batch: int, shape: tuple, classes: int
) -> tuple[int, Exception] | None:
    """The input's and output's first axis made symbolic where the graph then runs at batch 1
    and 2 (ONNX Runtime on a trial copy); else the batch is kept, and the batch that failed
    and why are returned."""
    import onnx

    trial = onnx.ModelProto()
    trial.CopyFrom(proto)
    _set_dim(_image_input(trial.graph), 0, BATCH)
    _set_dim(trial.graph.output[0], 0, BATCH)
    del trial.graph.value_info[:]  # inferred shapes that carry the fixed batch
    onnx.save(trial, str(scratch))
    for tried in (1, 2):
        why = _run(scratch, tried, shape, classes)
        if why is not None:
            return tried, why
    proto.CopyFrom(trial)
    return None


def kept_batch_warning(batch: int, tried: int, why: Exception) -> str:
    """What a batch the graph fixes costs: the node that failed at another batch, and which
    commands and batches refuse the copy."""
    line = str(why).splitlines()[0] if str(why).strip() else type(why).__name__
    found = ORT_NODE_FAILURE.search(line)
    where = (
        f"node {found['name']!r} ({found['op']}) fails at batch {tried}: {found['why'].strip()}"
        if found
        else f"at batch {tried}: {line}"
    )
    refused = (
        "it runs one image at a time, and a bench, tune, gate or plan configuration at a batch "
        "above 1 is refused"
        if batch == 1
        else "every engine refuses it (build, bench, predict, tune, gate, plan, package), and "
        f"so do calibrate, fp16 and compare (a data set's last batch is smaller than {batch})"
    )
    return (
        f"the graph fixes the batch at {batch} ({where}); the copy keeps batch {batch}: "
        f"{refused}. Re-export the model with a dynamic batch axis and import that"
    )
