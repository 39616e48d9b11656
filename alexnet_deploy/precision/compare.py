"""compare: where a candidate (FP16 or INT8 artifact) loses precision, layer by layer, against
the FP32 reference, on the same real images.

Both models are run with every mapped layer's tensor exposed as an output (precision/layers.py),
one batch at a time; each layer's figures are accumulated over the batches, so no more than one
batch's intermediate tensors are ever held (the report states that peak). A quantized layer's
value in the candidate is its dequantized copy (what the next layers read). Per layer: cosine of
each sample's flattened tensor with the reference's (averaged), SNR in dB (signal power over
error power, over all samples), the largest absolute error, and for an INT8 candidate the clip
rate: the share of the values entering the layer's activation quantizer that lie beyond the
float range it can represent (they saturate; below a range that starts at 0 the quantizer is the
folded ReLU, not saturation). Then the logits: top-1 agreement, top-5 overlap, centered cosine.

What computes the candidate (``runtime``):
* ``emulated``: ONNX Runtime with every graph optimization off: Q/DQ executed as written, in
  float (what the file means; the same on every CPU);
* ``ort``: ONNX Runtime's default optimizations on this CPU. Exposing a tensor as an output
  keeps it from being fused away, so kernels around exposed tensors may differ from a plain
  session's; the logits row is the figure to quote for the runtime as deployed;
* ``openvino``: OpenVINO's CPU plugin, with each exposed tensor added as a model output.
The reference always runs in FP32 with optimizations off.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from alexnet_deploy.errors import UsageError

RUNTIMES = ("emulated", "ort", "openvino")


@dataclass
class LayerFigures:
    name: str
    op: str
    shape: list[int]
    cosine: float
    snr_db: float
    max_abs_error: float
    clip_rate: float | None  # None: no quantizer on this tensor


@dataclass
class Comparison:
    reference: str
    candidate: str
    runtime: str
    images: int
    batch_size: int
    layers: list[LayerFigures]
    folded: list[str]  # layers with no counterpart: their activation folded into them
    logits: dict
    peak_tensor_bytes: int  # the most intermediate-tensor memory held at once (one batch)
    clip_note: str = ""
    profile: dict | None = None  # compare --profile: precision/profile.py's Profile.as_dict()
    profile_note: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


class _Accumulator:
    """One layer's running sums over batches."""

    def __init__(self) -> None:
        self.cos_sum = 0.0
        self.samples = 0
        self.signal = 0.0
        self.noise = 0.0
        self.max_abs = 0.0
        self.clipped = 0
        self.values = 0
        self.shape: list[int] = []

    def add(self, ref: np.ndarray, cand: np.ndarray, quantizer, pre: np.ndarray | None) -> None:
        """``cand``: the layer's value in the candidate; ``pre``: the tensor its quantizer read
        (for the clip rate)."""
        ref = ref.astype(np.float64).reshape(len(ref), -1)
        cand = cand.astype(np.float64).reshape(len(cand), -1)
        norms = np.linalg.norm(ref, axis=1) * np.linalg.norm(cand, axis=1)
        both_zero = norms == 0
        cos = np.where(both_zero, 1.0, np.sum(ref * cand, axis=1) / np.where(both_zero, 1, norms))
        self.cos_sum += float(cos.sum())
        self.samples += len(ref)
        error = ref - cand
        self.signal += float(np.sum(ref**2))
        self.noise += float(np.sum(error**2))
        self.max_abs = max(self.max_abs, float(np.abs(error).max(initial=0.0)))
        if quantizer is not None and pre is not None:
            # below a range that starts at 0 the quantizer is the (folded) ReLU, not saturation
            below = (pre < quantizer.low) if quantizer.low < 0 else np.zeros(pre.shape, bool)
            self.clipped += int(np.sum(below | (pre > quantizer.high)))
        self.values += cand.size

    def figures(self, name: str, op: str, quantized: bool) -> LayerFigures:
        if self.noise == 0:
            snr = float("inf")
        elif self.signal == 0:
            snr = float("-inf")
        else:
            snr = 10 * float(np.log10(self.signal / self.noise))
        return LayerFigures(
            name,
            op,
            self.shape,
            self.cos_sum / max(self.samples, 1),
            snr,
            self.max_abs,
            (self.clipped / self.values) if quantized and self.values else None,
        )


def _ort_session(model, optimized: bool):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if not optimized:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    input_name = session.get_inputs()[0].name
    names = [o.name for o in session.get_outputs()]
    return lambda batch: dict(zip(names, session.run(names, {input_name: batch}), strict=True))


def _openvino_session(model, names: list[str]):
    import openvino as ov

    core = ov.Core()
    graph = core.read_model(model.SerializeToString(), b"")
    compiled = core.compile_model(graph, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()
    outputs = {name: compiled.output(name) for name in names}

    def run(batch):
        result = request.infer({0: batch})
        return {name: np.asarray(result[port]) for name, port in outputs.items()}

    return run


def compare_models(
    reference_path: Path,
    candidate_path: Path,
    images: np.ndarray,
    *,
    runtime: str = "emulated",
    batch_size: int = 8,
    profile_runs: int = 0,
    progress=lambda m: None,
) -> Comparison:
    """Run both on ``images`` (N x C x H x W float32, the reference's preprocessing) and compare
    every mapped layer, then the logits."""
    from alexnet_deploy.artifact import load_model_proto
    from alexnet_deploy.calib.fidelity import compare_logits
    from alexnet_deploy.precision.layers import map_layers, with_outputs

    if runtime not in RUNTIMES:
        raise UsageError(f"--runtime {runtime!r} is unknown", hint=f"one of {', '.join(RUNTIMES)}")
    reference = load_model_proto(reference_path, what="reference")
    candidate = load_model_proto(candidate_path, what="candidate")
    mapping = map_layers(reference, candidate, Path(reference_path), Path(candidate_path))
    names = [layer.name for layer in mapping.layers]
    logits_ref_name = reference.graph.output[0].name
    logits_cand_name = candidate.graph.output[0].name
    ref_run = _ort_session(with_outputs(reference, names, {}), optimized=False)
    values = {name: mapping.candidate_value(name) for name in names}
    exposed = sorted({*names, *values.values()})
    cand_model = with_outputs(candidate, exposed, mapping.dtypes)
    if runtime == "openvino":
        cand_run = _openvino_session(cand_model, [*exposed, logits_cand_name])
    else:
        cand_run = _ort_session(cand_model, optimized=runtime == "ort")
    sums = {name: _Accumulator() for name in names}
    ref_logits, cand_logits, peak = [], [], 0
    for start in range(0, len(images), batch_size):
        batch = images[start : start + batch_size]
        progress(f"images {start + 1}-{start + len(batch)} of {len(images)}")
        feed = batch.astype(np.float16) if _input_is_half(candidate) else batch
        ref_out, cand_out = ref_run(batch), cand_run(feed)
        peak = max(
            peak,
            sum(ref_out[n].nbytes for n in names) + sum(cand_out[n].nbytes for n in exposed),
        )
        for name in names:
            sums[name].shape = list(ref_out[name].shape[1:])
            sums[name].add(
                ref_out[name], cand_out[values[name]], mapping.quantizers.get(name),
                cand_out[name],
            )  # fmt: skip
        ref_logits.append(ref_out[logits_ref_name].astype(np.float32))
        cand_logits.append(cand_out[logits_cand_name].astype(np.float32))
        del ref_out, cand_out
    fidelity = compare_logits(np.concatenate(ref_logits), np.concatenate(cand_logits))
    quantized = bool(mapping.quantizers)
    profiled, profile_note = None, ""
    if profile_runs > 0:
        from alexnet_deploy.precision.profile import profile_candidate

        timed_on = "openvino" if runtime == "openvino" else "ort"
        progress(f"profiling {Path(candidate_path).name} on {timed_on}")
        batch = images[:batch_size]
        feed = batch.astype(np.float16) if _input_is_half(candidate) else batch
        profiled = profile_candidate(candidate_path, names, feed, timed_on, profile_runs).as_dict()
        profile_note = (
            f"time: {timed_on}'s profiler, the candidate as deployed (no tensor exposed), mean "
            f"of {profile_runs} runs of a batch of {len(batch)}"
            + (
                " (emulated execution is not timed: ONNX Runtime's kernels are)"
                if runtime == "emulated"
                else ""
            )
        )
    return Comparison(
        reference=str(reference_path),
        candidate=str(candidate_path),
        runtime=runtime,
        images=len(images),
        batch_size=batch_size,
        layers=[
            sums[layer.name].figures(layer.name, layer.op, layer.name in mapping.quantizers)
            for layer in mapping.layers
        ],
        folded=[f"{layer.name} ({layer.op})" for layer in mapping.folded],
        logits={
            "top1_agreement": fidelity.top1_agreement,
            "top5_overlap": fidelity.top5_overlap,
            "centered_cosine": fidelity.centered_cosine,
            "max_abs_error": fidelity.max_abs_error,
        },
        peak_tensor_bytes=peak,
        clip_note=""
        if quantized
        else "the candidate has no activation quantizers (no Q/DQ): clip rates do not apply",
        profile=profiled,
        profile_note=profile_note,
    )


def _input_is_half(model) -> bool:
    from onnx import TensorProto

    return model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT16
