"""The FP16 stage: FP32 ONNX -> FP16 ONNX, with float32 inputs and outputs kept, judged
against FP32 like every precision stage.

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
from dataclasses import dataclass, field
from pathlib import Path

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


@dataclass
class Fp16Report:
    model: Path
    output: Path | None
    data: CalibrationData
    fidelity: Fidelity
    kept_fp32_ops: tuple[str, ...]
    convert_seconds: float
    budget_enforced: bool
    budget_note: str
    failures: list[str] = field(default_factory=list)
    emulated: Fidelity | None = None  # FP16 storage, float compute: the same on every CPU


def convert_fp16(
    model_path: Path,
    request: DataRequest,
    *,
    output: Path | None = None,
    max_top1_drop: float = C.DEFAULT_MAX_TOP1_DROP,
    force: bool = False,
    progress: Progress = lambda _m: None,
) -> Fp16Report:
    """Write the FP16 artifact (float32 I/O kept) and measure it against FP32 on ``request``'s
    data (every sample is held out: FP16 needs no calibration)."""
    import onnx

    model_path = Path(model_path)
    info = read_artifact(model_path)
    check_input_model(info)
    request = request.for_model(info)
    out = Path(output) if output else ArtifactSet(model_path).fp16
    prepare_artifact_output(out, model_path, force=force, command="fp16", request=request)
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
    progress("converting to FP16")
    start = time.perf_counter()
    proto = fp16_model(onnx.load(str(model_path)))
    seconds = time.perf_counter() - start
    write_artifact_metadata(
        proto,
        {
            "precision": "fp16",
            "fp16_kept_fp32_ops": ",".join(C.FP16_KEEP_FP32_OPS),
            "source_sha256": sha256_file(model_path),
        },
    )
    enforced, note = budget_policy(info, data)
    candidate = out.with_name(f".{out.name}.candidate")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(proto, str(candidate))
        progress(f"measuring fidelity on {len(data.eval)} samples")
        reference = ort_logits(model_path, info.input.name, data.eval.images, request.batch_size)
        logits = ort_logits(candidate, info.input.name, data.eval.images, request.batch_size)
        fidelity = compare_logits(reference, logits, data.eval.labels)
        emulated = ort_logits(
            candidate, info.input.name, data.eval.images, request.batch_size, emulated=True
        )
        report = Fp16Report(
            model_path, None, data, fidelity, C.FP16_KEEP_FP32_OPS, seconds, enforced, note
        )
        report.emulated = compare_logits(reference, emulated, data.eval.labels)
        if enforced and fidelity.top1_drop_points() > max_top1_drop:
            report.failures.append(
                f"fp16: top-1 drops {fidelity.top1_drop_points():.2f} points against FP32 (budget {max_top1_drop:g})"
            )
            return report
        publish(candidate, out, replace=force)  # only a checked artifact gets the final name
        report.output = out
        return report
    finally:
        candidate.unlink(missing_ok=True)
