"""The peer beside ``plan``'s choice: NNCF's ``quantize_with_accuracy_control`` on the same
FP32 model, calibration images, held-out images and budget. It reverts layers to float by
accuracy alone (keeping the first configuration that meets the bar); ``plan`` measures its
speed beside the planner's choice."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import numpy as np

from alexnet_deploy.calib.fidelity import EMULATED, compare_logits, logits_on, ort_logits
from alexnet_deploy.errors import AlexnetDeployError
from alexnet_deploy.precision.plans import WEIGHT_OPS, Plan


def float_layers_of(model) -> frozenset[str]:
    """The weight layers (by output tensor) whose weights reach them without a DequantizeLinear."""
    producers = {o: n for n in model.graph.node for o in n.output}
    kept = set()
    for node in model.graph.node:
        if node.op_type in WEIGHT_OPS and len(node.input) > 1:
            weight = producers.get(node.input[1])
            if weight is None or weight.op_type != "DequantizeLinear":
                kept.add(node.output[0])
    return frozenset(kept)


def nncf_accuracy_control(model_path: Path, data, request, scratch: Path, progress):
    """(Evaluated, path): NNCF's accuracy-controlled INT8 model of ``model_path``, written into
    the planner's ``scratch`` directory, with its emulated fidelity."""
    import logging

    import onnx

    from alexnet_deploy.calib.nncf_quant import nncf_missing
    from alexnet_deploy.calib.stage import write_artifact_metadata
    from alexnet_deploy.fileio import sha256_file
    from alexnet_deploy.onnx_model import read_artifact
    from alexnet_deploy.precision.search import Evaluated

    reason = nncf_missing()
    if reason:
        raise AlexnetDeployError(reason, hint="or drop --nncf")
    import nncf

    logging.getLogger("nncf").setLevel(logging.ERROR)
    info = read_artifact(model_path)
    name = info.input.name
    labels = data.eval.labels
    reference = ort_logits(model_path, name, data.eval.images, 64)
    reference_top1 = reference.argmax(1) if labels is None else labels

    def validate(model, items) -> tuple[float, list[float]]:
        import onnxruntime as ort

        session = ort.InferenceSession(
            model.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        hits = [float(session.run(None, {name: x[None]})[0].argmax() == y) for x, y in items]
        return float(np.mean(hits)), hits

    calibration = nncf.Dataset(list(data.calib.images), lambda image: {name: image[None]})
    validation = nncf.Dataset(list(zip(data.eval.images, reference_top1, strict=True)))
    progress(f"NNCF quantize_with_accuracy_control (max drop {request.max_top1_drop:g} points)")
    try:
        with contextlib.redirect_stdout(sys.stderr):  # NNCF's progress bars: stderr
            quantized = nncf.quantize_with_accuracy_control(
                onnx.load(str(model_path)),
                calibration,
                validation,
                lambda model, items: validate(model, list(items)),
                max_drop=request.max_top1_drop / 100,
                drop_type=nncf.DropType.ABSOLUTE,
                subset_size=len(data.calib),
            )
    except Exception as err:  # NNCF raises its own and onnx/ORT errors
        raise AlexnetDeployError(
            f"NNCF's accuracy control failed on {model_path}: {str(err).splitlines()[0]}",
            hint="drop --nncf to plan without the peer",
        ) from None
    write_artifact_metadata(
        quantized,
        {
            "precision": "int8",
            "int8_target": "cpu",
            "int8_quantizer": "nncf",
            "int8_recipe": f"nncf {nncf.__version__} quantize_with_accuracy_control",
            "source_sha256": sha256_file(model_path),
        },
    )
    path = scratch / "nncf-accuracy-control.onnx"
    onnx.save(quantized, str(path))
    logits = logits_on(EMULATED, path, name, data.eval.images, 64)
    peer = Evaluated(Plan(float_layers_of(quantized)), compare_logits(reference, logits, labels))
    peer.measured_note = "NNCF: layers reverted by accuracy alone"
    return peer, path
