"""compare: where a candidate (FP16, BF16 or INT8 artifact) loses precision, layer by layer,
against the FP32 reference, on the same real images (a BF16 candidate runs as
precision/bf16_runs.py says: emulated, or OpenVINO's bf16; not on ONNX Runtime's CPU provider).

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
* ``ort``: the graph ``build --backend ort`` saves and runs: ONNX Runtime's default
  optimizations on this CPU (Q/DQ pairs fused into integer kernels, layouts changed). The
  tensors are read from that optimized graph as it is (exposing a tensor of the file as
  written would keep it from being fused, and the kernels would be the emulated ones): a layer
  whose dequantized copy was fused away is read from its quantized integers, one with neither
  is listed as fused away; clip rates need the float tensor before the quantizer, which the
  integer kernels keep internal;
* ``openvino``: OpenVINO's CPU plugin, with each exposed tensor added as a model output.
The reference always runs in FP32 with optimizations off.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from alexnet_deploy import constants as C
from alexnet_deploy.errors import UsageError
from alexnet_deploy.progress import Progress, silent

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
    node: str = ""  # the reference's node that computes it
    block: str = ""  # its module block (precision.layers.node_block), "" where names say none


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
    fused: list[str] = field(default_factory=list)  # no tensor of their own as executed
    profile: dict | None = None  # compare --profile: precision/profile.py's Profile.as_dict()
    profile_note: str = ""
    model_name: str = ""  # the reference's ArtifactInfo.model_name: every output names it

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
        self.clip_seen = False  # the tensor the quantizer reads was there to count
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
            self.clip_seen = True
        self.values += cand.size

    def figures(self, layer, quantized: bool) -> LayerFigures:
        """``layer``: the precision.layers.Layer these sums are of."""
        if self.noise == 0:
            snr = float("inf")
        elif self.signal == 0:
            snr = float("-inf")
        else:
            snr = 10 * float(np.log10(self.signal / self.noise))
        return LayerFigures(
            layer.name,
            layer.op,
            self.shape,
            self.cos_sum / max(self.samples, 1),
            snr,
            self.max_abs,
            (self.clipped / self.values) if quantized and self.clip_seen else None,
            layer.node,
            layer.block,
        )


def _ort_session(model):
    """``model`` run as it is: no graph optimization (the file's Q/DQ in float, or a graph
    ONNX Runtime already optimized, run with the kernels it chose)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    input_name = session.get_inputs()[0].name
    names = [o.name for o in session.get_outputs()]
    return lambda batch: dict(zip(names, session.run(names, {input_name: batch}), strict=True))


def _openvino_session(model, names: list[str], hint: str = "f32"):
    """OpenVINO's CPU plugin at inference precision ``hint`` (f32, or bf16 for a BF16
    candidate), each of ``names`` an output."""
    import openvino as ov

    core = ov.Core()
    graph = core.read_model(model.SerializeToString(), b"")
    compiled = core.compile_model(graph, "CPU", {"INFERENCE_PRECISION_HINT": hint})
    request = compiled.create_infer_request()
    outputs = {name: compiled.output(name) for name in names}

    def run(batch):
        result = request.infer({0: batch})
        return {name: np.asarray(result[port]) for name, port in outputs.items()}

    return run


def _ort_as_built(candidate_path: Path):
    """The graph ``build --backend ort`` makes of the candidate and its runner executes: ONNX
    Runtime's default graph optimizations on this CPU, saved (made by that backend's build)."""
    import tempfile

    import onnx

    from alexnet_deploy.engines.options import BuildOptions
    from alexnet_deploy.engines.ort import OrtBackend
    from alexnet_deploy.onnx_model import read_artifact

    options = BuildOptions(precision=read_artifact(candidate_path).precision)
    with tempfile.TemporaryDirectory(prefix="alexnet-compare-") as scratch:
        engine = OrtBackend().build(Path(candidate_path), options, Path(scratch))
        return onnx.load(str(engine.path))


def _value(outputs: dict, source) -> np.ndarray:
    tensor = outputs[source.tensor]
    return tensor if source.quantizer is None else source.quantizer.dequantize(tensor)


def compare_artifacts(
    reference: Path,
    candidate: Path,
    data: str = "shipped",
    *,
    count: int | None = None,
    runtime: str = "emulated",
    batch_size: int = 8,
    seed: int = C.DEFAULT_SEED,
    profile_runs: int = 0,
    progress: Progress = silent,
) -> Comparison:
    """``compare``: up to ``count`` images of ``data`` read with the reference's own
    preprocessing, then every layer of the candidate against the reference (compare_models)."""
    from alexnet_deploy.calib.data import images_for_model
    from alexnet_deploy.onnx_model import read_artifact

    if batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}")
    info = read_artifact(reference)
    info.require_float_input("compare")
    progress(f"reading images from {data}")
    images = images_for_model(info, data, count=count, seed=seed, what="--data").eval.images
    return compare_models(
        reference,
        candidate,
        images,
        runtime=runtime,
        batch_size=batch_size,
        profile_runs=profile_runs,
        progress=progress,
    )


def compare_models(
    reference_path: Path,
    candidate_path: Path,
    images: np.ndarray,
    *,
    runtime: str = "emulated",
    batch_size: int = 8,
    profile_runs: int = 0,
    progress: Progress = silent,
) -> Comparison:
    """Run both on ``images`` (N x C x H x W float32, the reference's preprocessing) and compare
    every mapped layer, then the logits."""
    from alexnet_deploy.calib.fidelity import compare_logits
    from alexnet_deploy.onnx_model import info_from_proto, load_model_proto
    from alexnet_deploy.precision.bf16_runs import (
        bf16_candidate_model,
        check_bf16_runtime,
        holds_bf16,
    )
    from alexnet_deploy.precision.layers import layer_sources, map_layers, with_outputs

    if runtime not in RUNTIMES:
        raise UsageError(f"--runtime {runtime!r} is unknown", hint=f"one of {', '.join(RUNTIMES)}")
    reference = load_model_proto(reference_path, what="reference")
    candidate = load_model_proto(candidate_path, what="candidate")
    batch_size = _check_pair(reference_path, reference, candidate_path, candidate, batch_size)
    bf16 = holds_bf16(candidate)  # the BF16 artifact: run as precision/bf16_runs.py says
    if bf16:
        check_bf16_runtime(runtime, Path(candidate_path))
    mapping = map_layers(reference, candidate, Path(reference_path), Path(candidate_path))
    names = [layer.name for layer in mapping.layers]
    logits_ref_name = reference.graph.output[0].name
    logits_cand_name = candidate.graph.output[0].name
    ref_run = _ort_session(with_outputs(reference, names, {}))
    # ort: the optimized graph as built, its surviving tensors exposed (nothing un-fused)
    executed = _ort_as_built(Path(candidate_path)) if runtime == "ort" else None
    sources, fused = layer_sources(mapping, names, executed)
    exposed = sorted({t for s in sources.values() for t in (s.tensor, s.pre) if t})
    cand_model = with_outputs(candidate if executed is None else executed, exposed, mapping.dtypes)
    if bf16:  # every tensor in float: the emulation's, or the FP32 model's run in bf16
        cand_model = with_outputs(bf16_candidate_model(reference, candidate, runtime), exposed, {})
        logits_cand_name = cand_model.graph.output[0].name
    if runtime == "openvino":
        hint = "bf16" if bf16 else "f32"
        cand_run = _openvino_session(cand_model, [*exposed, logits_cand_name], hint)
    else:
        cand_run = _ort_session(cand_model)
    sums = {name: _Accumulator() for name in sources}
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
        for name, source in list(sources.items()):
            value = _value(cand_out, source)
            if value.shape != ref_out[name].shape:  # the name kept, the layout changed: no match
                fused.append(name)
                del sources[name], sums[name]
                continue
            sums[name].shape = list(ref_out[name].shape[1:])
            pre = cand_out[source.pre] if source.pre else None
            sums[name].add(ref_out[name], value, mapping.quantizers.get(name), pre)
        ref_logits.append(ref_out[logits_ref_name].astype(np.float32))
        cand_logits.append(cand_out[logits_cand_name].astype(np.float32))
        del ref_out, cand_out
    fidelity = compare_logits(np.concatenate(ref_logits), np.concatenate(cand_logits))
    quantized = bool(mapping.quantizers)
    clip_note = (
        ""
        if quantized
        else "the candidate has no activation quantizers (no Q/DQ): clip rates do not apply"
    )
    if quantized and any(not sums[n].clip_seen for n in sums if n in mapping.quantizers):
        clip_note = (
            "clip % is shown where the float tensor a quantizer reads is still computed as "
            f"executed by {runtime}; its integer kernels keep the rest inside (--runtime "
            "emulated shows every layer's)"
        )
    profiled, profile_note = None, ""
    if profile_runs > 0 and bf16:
        from alexnet_deploy.precision.bf16_runs import bf16_profile

        progress(f"profiling {Path(candidate_path).name} as OpenVINO's bf16")
        batch = images[:batch_size]
        profiled, profile_note = bf16_profile(Path(reference_path), names, batch, profile_runs)
    elif profile_runs > 0:
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
        model_name=info_from_proto(Path(reference_path), reference).model_name,
        reference=str(reference_path),
        candidate=str(candidate_path),
        runtime=runtime,
        images=len(images),
        batch_size=batch_size,
        layers=[
            sums[layer.name].figures(layer, layer.name in mapping.quantizers)
            for layer in mapping.layers
            if layer.name in sums
        ],
        folded=[f"{layer.name} ({layer.op})" for layer in mapping.folded],
        fused=[f"{layer.name} ({layer.op})" for layer in mapping.layers if layer.name in fused],
        logits={
            "top1_agreement": fidelity.top1_agreement,
            "top5_overlap": fidelity.top5_overlap,
            "centered_cosine": fidelity.centered_cosine,
            "max_abs_error": fidelity.max_abs_error,
        },
        peak_tensor_bytes=peak,
        clip_note=clip_note,
        profile=profiled,
        profile_note=profile_note,
    )


def _check_pair(reference_path, reference, candidate_path, candidate, batch_size: int) -> int:
    """Refuse a candidate with another number of classes than the reference (its input is
    checked by map_layers); return the batch size both run at (a model with a fixed batch of
    1 takes one image at a time: ArtifactInfo.batch_for)."""
    from alexnet_deploy.onnx_model import info_from_proto

    ref = info_from_proto(Path(reference_path), reference)
    cand = info_from_proto(Path(candidate_path), candidate)
    classes = [info.outputs[0].dims[-1:] for info in (ref, cand)]
    if classes[0] != classes[1]:
        raise UsageError(
            f"{candidate_path} is not a version of {reference_path}: it has "
            f"{classes[1][0] if classes[1] else '?'} classes, the reference "
            f"{classes[0][0] if classes[0] else '?'}",
            hint="compare an artifact with the FP32 model it was made from (FP16 and INT8 keep "
            "its classes)",
        )
    return min(ref.batch_for(batch_size), cand.batch_for(batch_size))


def _input_is_half(model) -> bool:
    from onnx import TensorProto

    return model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT16
