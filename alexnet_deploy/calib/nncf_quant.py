"""A runtime's own post-training quantizer as a second INT8 route: NNCF (OpenVINO's).

``nncf.quantize`` runs on the FP32 ONNX export with the same calibration images as
``calibrate`` and its defaults (the route a user of OpenVINO's documentation takes), and the
result is written as a Q/DQ ONNX artifact, ``STEM.int8-nncf.onnx``, with this tool's metadata:
every CPU backend builds it like the tool's own form (``--quantizer nncf``), and it is held to
the same fidelity budget against FP32 on the same held-out images.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from alexnet_deploy.calib.fidelity import Fidelity, compare_logits, ort_logits
from alexnet_deploy.calib.samples import CalibrationData
from alexnet_deploy.errors import AlexnetDeployError, UsageError
from alexnet_deploy.fileio import atomic_path, sha256_file
from alexnet_deploy.onnx_model import read_artifact
from alexnet_deploy.progress import Progress


def nncf_missing() -> str | None:
    """Why the NNCF route cannot run here (None when it can)."""
    try:
        found = importlib.util.find_spec("nncf") is not None
    except (ImportError, ValueError):
        found = False
    return None if found else "nncf is not installed (pip install 'alexnet-deploy[nncf]')"


@dataclass
class NncfReport:
    path: Path
    data: CalibrationData
    fidelity: Fidelity
    seconds: float
    nncf_version: str
    budget_enforced: bool
    budget_note: str


def nncf_output(model: Path) -> Path:
    from alexnet_deploy.artifacts import ArtifactSet

    return ArtifactSet(model).int8("nncf")


def quantize_nncf(
    model_path: Path,
    request,
    *,
    output: Path | None = None,
    max_top1_drop: float,
    force: bool = False,
    progress: Progress = lambda _m: None,
) -> NncfReport:
    """FP32 ONNX -> NNCF-quantized Q/DQ ONNX beside it; refuses (writing nothing) when top-1
    drops more than ``max_top1_drop`` points on real data with trained weights."""
    import onnx

    from alexnet_deploy.calib.stage import (
        budget_policy,
        check_input_model,
        prepare_artifact_output,
        write_artifact_metadata,
    )

    reason = nncf_missing()
    if reason:
        raise AlexnetDeployError(reason, hint="or use the tool's own form: --quantizer qdq")
    if max_top1_drop < 0:
        raise UsageError(f"--max-top1-drop must be >= 0, got {max_top1_drop}")
    model_path = Path(model_path)
    info = read_artifact(model_path)
    check_input_model(info)
    request = request.for_model(info)
    out = Path(output) if output else nncf_output(model_path)
    prepare_artifact_output(out, model_path, force=force, command="calibrate", request=request)

    progress("loading calibration data")
    data = request.load(info)
    reference = ort_logits(model_path, info.input.name, data.eval.images, request.batch_size)

    import nncf

    logging.getLogger("nncf").setLevel(logging.ERROR)
    progress(f"nncf.quantize on {len(data.calib)} samples")
    start = time.perf_counter()
    name = info.input.name
    dataset = nncf.Dataset(list(data.calib.images), lambda image: {name: image[None]})
    try:
        # NNCF draws its progress bars on stdout; progress belongs on stderr (stdout is results)
        with contextlib.redirect_stdout(sys.stderr):
            quantized = nncf.quantize(
                onnx.load(str(model_path)), dataset, subset_size=len(data.calib)
            )
    except Exception as err:  # NNCF raises its own and onnx/ORT errors
        raise AlexnetDeployError(
            f"nncf.quantize failed on {model_path}: {str(err).splitlines()[0]}"
        ) from None
    seconds = time.perf_counter() - start
    write_artifact_metadata(
        quantized,
        {
            "precision": "int8",
            "int8_target": "cpu",
            "int8_quantizer": "nncf",
            "int8_recipe": f"nncf {nncf.__version__} quantize defaults",
            "calibration_method": "nncf",
            "calibration_data": data.kind,
            "calibration_data_key": data.key(),
            "calibration_source_key": request.source_key(),
            "synthetic_calibration": str(data.synthetic).lower(),
            "source_sha256": sha256_file(model_path),
        },
    )
    enforced, note = budget_policy(info, data)
    with atomic_path(out) as tmp:
        onnx.save(quantized, str(tmp))
        progress("fidelity against FP32")
        logits = ort_logits(tmp, name, data.eval.images, request.batch_size)
        fidelity = compare_logits(reference, logits, data.eval.labels)
        if enforced and fidelity.top1_drop_points() > max_top1_drop:
            raise AlexnetDeployError(
                f"NNCF's INT8 model drops top-1 by {fidelity.top1_drop_points():.2f} points against "
                f"FP32 (budget {max_top1_drop:g}); {out} not written",
                hint="calibrate on more, or more representative, images (--data) or use --quantizer qdq",
            )
    return NncfReport(out, data, fidelity, seconds, nncf.__version__, enforced, note)
