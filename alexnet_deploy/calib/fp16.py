"""The 16-bit float stages: FP32 ONNX -> FP16 (or BF16: calib/bf16.py) ONNX, with float32
inputs and outputs kept, judged against FP32 like every precision stage (``convert_half``, one
body for both; a ``HalfFloat`` says how each is made and judged).

Route: onnxconverter-common's ``convert_float_to_float16`` (a light dependency). NVIDIA
ModelOpt's ONNX autocast is the route NVIDIA documents for TensorRT 11, but it is a ~2 GB
install and, for a graph of plain Conv/Gemm/ReLU/MaxPool/LRN, makes the same decisions;
measured fidelity is in docs/calibration.md. Ops in ``FP16_KEEP_FP32_OPS`` stay FP32.
"""

from __future__ import annotations

import contextlib
import io
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from alexnet_deploy import constants as C
from alexnet_deploy.artifacts import ArtifactSet
from alexnet_deploy.calib.data import load_held_out
from alexnet_deploy.calib.fidelity import Fidelity, compare_logits, ort_logits
from alexnet_deploy.calib.samples import CalibrationData
from alexnet_deploy.calib.stage import (
    DataRequest,
    budget_policy,
    check_input_model,
    prepare_artifact_output,
    write_artifact_metadata,
)
from alexnet_deploy.fileio import publish, sha256_file
from alexnet_deploy.onnx_model import read_artifact
from alexnet_deploy.progress import Progress


def fp16_model(model, keep_fp32_ops: tuple[str, ...] = C.FP16_KEEP_FP32_OPS):
    """Return an FP16 copy of ``model`` (an onnx.ModelProto)."""
    from onnxconverter_common import float16

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # per-initializer "value truncated" notices
        return float16.convert_float_to_float16(
            model, keep_io_types=True, op_block_list=list(keep_fp32_ops), disable_shape_infer=False
        )


def kept_fp32_ops(model) -> tuple[str, ...]:
    """The ops of FP16_KEEP_FP32_OPS that ``model`` (an onnx.ModelProto) has: those its 16-bit
    artifact keeps in FP32 (none for a model without LRN), as its report and metadata say."""
    ops = {node.op_type for node in model.graph.node}
    return tuple(op for op in C.FP16_KEEP_FP32_OPS if op in ops)


Logits = Callable[..., np.ndarray]


def _ort_executed(model_path: Path, candidate: Path, input_name, images, batch_size):
    """FP16 as ONNX Runtime's CPU kernels execute it (the file itself: runs on every CPU)."""
    return "ort", ort_logits(candidate, input_name, images, batch_size)


def _ort_emulated(candidate: Path, input_name, images, batch_size) -> np.ndarray:
    return ort_logits(candidate, input_name, images, batch_size, emulated=True)


@dataclass(frozen=True)
class HalfFloat:
    """A 16-bit float artifact: how it is made from the FP32 model and how it is judged."""

    precision: str  # "fp16" or "bf16": its metadata and its sibling's name (artifacts.py)
    convert: Callable  # onnx.ModelProto (FP32) -> the artifact's ModelProto
    # (FP32 model, candidate, input name, images, batch) -> (runtime, logits) as a runtime of
    # this CPU executes the precision, or a str saying why it cannot here
    executed: Callable[..., tuple[str, np.ndarray] | str]
    emulated: Logits  # (candidate, input name, images, batch) -> logits as the file means them
    judged_on: tuple[str, ...]  # the figures held to the budget: "executed", "emulated"


FP16 = HalfFloat("fp16", fp16_model, _ort_executed, _ort_emulated, ("executed",))


@dataclass
class HalfFloatReport:
    model: Path
    output: Path | None
    data: CalibrationData
    fidelity: Fidelity | None  # as executed on this CPU (None: no runtime here runs it)
    kept_fp32_ops: tuple[str, ...]
    convert_seconds: float
    budget_enforced: bool
    budget_note: str
    failures: list[str] = field(default_factory=list)
    emulated: Fidelity | None = None  # 16-bit storage, float compute: the same on every CPU
    precision: str = "fp16"
    executed_on: str = ""  # the runtime of ``fidelity``
    not_executed: str = ""  # why there is no as-executed figure


def convert_fp16(model_path: Path, request: DataRequest, **options) -> HalfFloatReport:
    """Write the FP16 artifact (float32 I/O kept) and measure it against FP32 on ``request``'s
    data (every sample is held out: FP16 needs no calibration); ``options``: those of
    :func:`convert_half`."""
    return convert_half(model_path, request, FP16, **options)


def convert_half(
    model_path: Path,
    request: DataRequest,
    form: HalfFloat,
    *,
    output: Path | None = None,
    max_top1_drop: float = C.DEFAULT_MAX_TOP1_DROP,
    force: bool = False,
    progress: Progress = lambda _m: None,
) -> HalfFloatReport:
    """Write ``form``'s artifact (float32 I/O kept, the ops of FP16_KEEP_FP32_OPS in FP32) and
    measure it against FP32, as executed and emulated; published only within the budget."""
    import onnx

    model_path = Path(model_path)
    info = read_artifact(model_path)
    check_input_model(info)
    request = request.for_model(info)
    out = Path(output) if output else ArtifactSet(model_path).for_precision(form.precision)
    prepare_artifact_output(out, model_path, force=force, command=form.precision, request=request)
    progress("loading evaluation data")
    data = load_held_out(
        request.data,
        image_shape=info.image_shape,
        preprocessing=request.preprocessing or info.preprocessing(),
        count=request.eval_size,
        seed=request.seed,
        labels_file=request.labels,
        preprocessing_flags=request.preprocessing_flags,
    )
    progress(f"converting to {form.precision.upper()}")
    source = onnx.load(str(model_path))
    kept = kept_fp32_ops(source)
    start = time.perf_counter()
    proto = form.convert(source)
    seconds = time.perf_counter() - start
    write_artifact_metadata(
        proto,
        {
            "precision": form.precision,
            f"{form.precision}_kept_fp32_ops": ",".join(kept),
            "source_sha256": sha256_file(model_path),
        },
    )
    enforced, note = budget_policy(info, data)
    candidate = out.with_name(f".{out.name}.candidate")
    name, images, batch = info.input.name, data.eval.images, request.batch_size
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(proto, str(candidate))
        progress(f"measuring fidelity on {len(data.eval)} samples")
        reference = ort_logits(model_path, name, images, batch)
        report = HalfFloatReport(
            model_path, None, data, None, kept, seconds, enforced, note,
            precision=form.precision,
        )  # fmt: skip
        executed = form.executed(model_path, candidate, name, images, batch)
        if isinstance(executed, str):
            report.not_executed = executed
        else:
            report.executed_on = executed[0]
            report.fidelity = compare_logits(reference, executed[1], data.eval.labels)
        emulated = form.emulated(candidate, name, images, batch)
        report.emulated = compare_logits(reference, emulated, data.eval.labels)
        figures = {"executed": report.fidelity, "emulated": report.emulated}
        for basis in form.judged_on:
            drop = None if figures[basis] is None else figures[basis].top1_drop_points()
            if enforced and drop is not None and drop > max_top1_drop:
                report.failures.append(
                    f"{form.precision} ({basis}): top-1 drops {drop:.2f} points against FP32 "
                    f"(budget {max_top1_drop:g})"
                )
        if report.failures:
            return report
        publish(candidate, out, replace=force)  # only a checked artifact gets the final name
        report.output = out
        return report
    finally:
        candidate.unlink(missing_ok=True)
