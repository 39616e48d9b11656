"""compare with a BF16 candidate (the ``bf16`` command's artifact, ``STEM.bf16.onnx``): what
computes it on a CPU, layer by layer.

* ``emulated``: the artifact's own tensors, in float, each rounded to bfloat16 where the
  artifact holds it in bfloat16 and its weights decoded (calib/bf16.py's ``bf16_emulation``,
  run by ONNX Runtime with every optimization off): what the file means, what TensorRT computes
  up to accumulation order, the same on every CPU;
* ``openvino``: what a CPU deploys for bf16, the FP32 model compiled with
  ``INFERENCE_PRECISION_HINT=bf16`` (``build --backend openvino --precision bf16``), on a CPU
  with native BF16 (else refused: it would be emulated at a loss); its layers' tensors are the
  FP32 model's, run in bf16;
* ``ort``: refused, with the reason: ONNX Runtime's CPU provider has no bfloat16 Conv/Gemm
  kernels (the artifact does not load there).

``--profile`` times the candidate as a CPU deploys it: OpenVINO's bf16 on the FP32 model.
"""

from __future__ import annotations

from pathlib import Path

from alexnet_deploy.errors import AlexnetDeployError, UsageError


def holds_bf16(model) -> bool:
    """Whether an ONNX model (a ModelProto) computes in bfloat16: a BFLOAT16 weight."""
    from onnx import TensorProto

    return any(i.data_type == TensorProto.BFLOAT16 for i in model.graph.initializer)


def check_bf16_runtime(runtime: str, candidate: Path) -> None:
    """Refuse a runtime that cannot compute a BF16 candidate, with its reason, before any run."""
    from alexnet_deploy.calib.fidelity import openvino_available
    from alexnet_deploy.cpu_isa import require_native_bf16
    from alexnet_deploy.engines.ort import CPU_HAS_NO_BF16

    if runtime == "ort":
        raise UsageError(
            f"--runtime ort cannot run {Path(candidate).name}: {CPU_HAS_NO_BF16}",
            hint="--runtime emulated (its tensors rounded to bfloat16, in float) or --runtime "
            "openvino (bf16 on this CPU, from the FP32 model)",
        )
    if runtime == "openvino":
        if not openvino_available():
            raise AlexnetDeployError(
                "--runtime openvino: OpenVINO is not installed",
                hint="pip install 'alexnet-deploy[openvino]', or --runtime emulated",
            )
        require_native_bf16()


def bf16_candidate_model(reference, candidate, runtime: str):
    """The model whose tensors stand for the BF16 candidate's on ``runtime``: the artifact's
    emulation (emulated), or the FP32 reference itself, which OpenVINO runs in bf16."""
    from alexnet_deploy.calib.bf16 import bf16_emulation

    return reference if runtime == "openvino" else bf16_emulation(candidate)


def bf16_profile(reference_path: Path, rows: list[str], batch, runs: int):
    """(profile, note): each layer's time as a CPU deploys bf16 (OpenVINO, the FP32 model in
    bf16), or (None, why not) where this machine cannot run it."""
    from alexnet_deploy.calib.fidelity import openvino_available
    from alexnet_deploy.cpu_isa import this_cpu
    from alexnet_deploy.precision.profile import profile_candidate

    if not this_cpu().bf16_native or not openvino_available():
        why = "OpenVINO is not installed" if this_cpu().bf16_native else "no native BF16 here"
        return None, f"not timed: a BF16 candidate runs on a CPU as OpenVINO's bf16 ({why})"
    profile = profile_candidate(reference_path, rows, batch, "openvino", runs, hint="bf16")
    note = (
        f"time: openvino's profiler, the FP32 model in bf16 as a CPU deploys the BF16 artifact "
        f"(no tensor exposed), mean of {runs} runs of a batch of {len(batch)}"
    )
    return profile.as_dict(), note
