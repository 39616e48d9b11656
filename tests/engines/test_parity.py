"""Every available backend x precision, on the same seeded inputs, against the FP32 reference
of the trained test network: logits within the precision's tolerance, top-1 in agreement."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alexnet_deploy import constants as C
from alexnet_deploy.calib.fidelity import compare_logits
from alexnet_deploy.engines.build import build_engine
from alexnet_deploy.engines.options import BuildOptions
from alexnet_deploy.engines.registry import get_backend

CASES = [
    ("ort", "fp32"),
    ("ort", "fp16"),
    ("ort", "int8"),
    pytest.param("openvino", "fp32", marks=pytest.mark.openvino),
    pytest.param("openvino", "fp16", marks=pytest.mark.openvino),
    pytest.param("openvino", "int8", marks=pytest.mark.openvino),
    ("torch", "fp32"),
    pytest.param("tensorrt", "fp32", marks=pytest.mark.tensorrt),
    pytest.param("tensorrt", "fp16", marks=pytest.mark.tensorrt),
    pytest.param("ort-cuda", "fp32", marks=pytest.mark.cuda),
    pytest.param("ort-cuda", "fp16", marks=pytest.mark.cuda),
    pytest.param("ort-trt", "fp32", marks=pytest.mark.tensorrt),
    pytest.param("ort-trt", "fp16", marks=pytest.mark.tensorrt),
]


@pytest.mark.parametrize(("backend", "precision"), CASES)
def test_backend_matches_fp32_reference(digits_artifacts, backend, precision):
    if not get_backend(backend).capability().available:
        pytest.skip(get_backend(backend).capability().reason)
    images = digits_artifacts["heldout_images"][:64]
    with torch.no_grad():
        reference = digits_artifacts["torch_model"](torch.from_numpy(images)).numpy()
    engine, _ = build_engine(
        digits_artifacts["model"],
        backend,
        BuildOptions(precision=precision),
        digits_artifacts["work"],
    )
    with get_backend(backend).runner(engine) as runner:
        logits = np.concatenate([runner.infer(images[:1]), runner.infer(images[1:])])
    rel_tol, min_agreement, min_cosine = C.PARITY_TOLERANCE[precision]
    fidelity = compare_logits(reference, logits)
    assert fidelity.top1_agreement >= min_agreement
    assert fidelity.centered_cosine >= min_cosine
    if rel_tol is not None:
        assert fidelity.max_abs_error <= rel_tol * np.abs(reference).max()
    assert engine.sidecar.precision == precision and engine.sidecar.backend == backend
