"""How faithful an artifact is to the FP32 model: computed on held-out inputs, never timed.

Centered cosine: the cosine of each sample's logits after subtracting their mean, averaged. An
untrained network gives nearly constant logits, so the raw cosine is about 1 whatever the error;
centering removes that shared offset.

Two kinds of figure, because the same Q/DQ file gives different logits on different kernels:

* ``emulated``: what the file *means*: quantize, dequantize, compute in float (ONNX Runtime with
  every graph optimization off, so no Q/DQ pair is fused into an integer kernel). TensorRT
  and any exact int8 kernel compute this, up to accumulation order. It is the same on every CPU.
* as-executed (``ort``, ``openvino``): what a runtime's CPU kernels give on *this* machine
  (ONNX Runtime's default optimizations; OpenVINO with the engines' f32 inference precision).
  On x86 without VNNI, u8 x s8 kernels saturate, and these figures move with the CPU class.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class Fidelity:
    samples: int
    top1_agreement: float  # fraction of samples whose argmax matches FP32
    top5_overlap: float  # mean |top5(candidate) & top5(FP32)| / 5
    centered_cosine: float
    max_abs_error: float
    top1_accuracy: float | None = None  # with labels only
    top5_accuracy: float | None = None
    reference_top1_accuracy: float | None = None
    reference_top5_accuracy: float | None = None

    def top1_drop_points(self) -> float:
        """Percentage points lost against FP32: accuracy with labels, else disagreement
        (an upper bound on the accuracy lost)."""
        if self.top1_accuracy is not None and self.reference_top1_accuracy is not None:
            return 100.0 * (self.reference_top1_accuracy - self.top1_accuracy)
        return 100.0 * (1.0 - self.top1_agreement)

    def as_dict(self) -> dict:
        return asdict(self)


def _topk(logits: np.ndarray, k: int) -> np.ndarray:
    k = min(k, logits.shape[1])
    return np.argsort(-logits, axis=1, kind="stable")[:, :k]


def _accuracy(logits: np.ndarray, labels: np.ndarray, k: int) -> float:
    return float(np.mean([labels[i] in row for i, row in enumerate(_topk(logits, k))]))


def centered_cosine(reference: np.ndarray, candidate: np.ndarray) -> float:
    ref = reference - reference.mean(axis=1, keepdims=True)
    cand = candidate - candidate.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1)
    cos = np.sum(ref * cand, axis=1) / np.maximum(norms, np.finfo(np.float64).tiny)
    return float(np.mean(cos))


def compare_logits(
    reference: np.ndarray, candidate: np.ndarray, labels: np.ndarray | None = None
) -> Fidelity:
    if reference.shape != candidate.shape:
        raise ValueError(f"logit shapes differ: {reference.shape} vs {candidate.shape}")
    reference = reference.astype(np.float64)
    candidate = candidate.astype(np.float64)
    top5_ref, top5_cand = _topk(reference, 5), _topk(candidate, 5)
    overlap = np.mean(
        [len(set(a) & set(b)) / len(a) for a, b in zip(top5_ref, top5_cand, strict=True)]
    )
    extra = {}
    if labels is not None:
        extra = {
            "top1_accuracy": _accuracy(candidate, labels, 1),
            "top5_accuracy": _accuracy(candidate, labels, 5),
            "reference_top1_accuracy": _accuracy(reference, labels, 1),
            "reference_top5_accuracy": _accuracy(reference, labels, 5),
        }
    return Fidelity(
        samples=len(reference),
        top1_agreement=float(np.mean(reference.argmax(1) == candidate.argmax(1))),
        top5_overlap=float(overlap),
        centered_cosine=centered_cosine(reference, candidate),
        max_abs_error=float(np.abs(reference - candidate).max()),
        **extra,
    )


EMULATED = "emulated"
AS_EXECUTED = ("ort", "openvino")
BASES = (EMULATED, *AS_EXECUTED)


def ort_logits(
    model_path,
    input_name: str,
    images: np.ndarray,
    batch_size: int,
    output: str | None = None,
    *,
    emulated: bool = False,
) -> np.ndarray:
    """Logits of ``images`` through an ONNX Runtime CPU session, in batches. ``emulated``:
    every graph optimization off, so Q/DQ nodes run as written (float compute)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if emulated:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    name = output or session.get_outputs()[0].name
    chunks = [
        session.run([name], {input_name: images[i : i + batch_size]})[0]
        for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(chunks)


def openvino_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("openvino") is not None


def openvino_logits(
    model_path, images: np.ndarray, batch_size: int, precision: str = "f32"
) -> np.ndarray:
    """Logits through OpenVINO's CPU plugin as the engines compile it (f32 inference
    precision: OpenVINO otherwise picks bf16 where the CPU has it; ``precision`` "bf16" for
    the engines of bf16)."""
    import openvino as ov

    config = {"INFERENCE_PRECISION_HINT": precision}
    compiled = ov.Core().compile_model(str(model_path), "CPU", config)
    request = compiled.create_infer_request()
    chunks = [
        np.array(request.infer([images[i : i + batch_size]])[compiled.output(0)])
        for i in range(0, len(images), batch_size)
    ]
    return np.concatenate(chunks)


def logits_on(
    basis: str, model_path, input_name: str, images: np.ndarray, batch_size: int
) -> np.ndarray:
    """Logits of ``model_path`` on one basis of :data:`BASES`."""
    if basis == "openvino":
        return openvino_logits(model_path, images, batch_size)
    return ort_logits(model_path, input_name, images, batch_size, emulated=basis == EMULATED)


def fidelity_by_basis(
    model_path,
    input_name: str,
    images: np.ndarray,
    batch_size: int,
    reference: np.ndarray,
    labels: np.ndarray | None = None,
    bases: tuple[str, ...] = BASES,
) -> dict[str, Fidelity]:
    """The artifact's fidelity against ``reference`` on each basis this machine can run."""
    runnable = [b for b in bases if b != "openvino" or openvino_available()]
    return {
        basis: compare_logits(
            reference, logits_on(basis, model_path, input_name, images, batch_size), labels
        )
        for basis in runnable
    }
