"""plan's measured choice: the plans within the budget timed with bench's rules
(precision/speed.py) beside their references, and the fastest within the budget chosen.

References: all-FP32 (the FP32 model: the all-float plan of ``--keep fp32``, which may be the
fastest), all-INT8, NNCF's accuracy-controlled model (``--nncf``). With ``--keep bf16`` (on
OpenVINO, a CPU with native BF16: OpenVINO's precision hint is one setting for the whole model,
so every float layer of a plan runs bf16 and every INT8 layer INT8) the references are all-FP32
and all-BF16 (the FP32 model run in bf16), so bf16 is kept only where it is the fastest; and
every plan timed in bf16 has its fidelity as the engine timed executed it, held to the budget
beside the emulated one (bf16's numerics are the runtime's, not the file's).
"""

from __future__ import annotations

from pathlib import Path

from alexnet_deploy.calib.fidelity import compare_logits
from alexnet_deploy.precision.plans import Plan
from alexnet_deploy.precision.search import Evaluated
from alexnet_deploy.precision.speed import (
    SpeedTarget,
    executed_logits,
    measure_speeds,
    speed_score,
)

ALL_FP32, ALL_BF16 = "all-FP32", "all-BF16"


def measure_and_choose(
    outcome, chosen, all_int8, file_of, model_path, request, data, budget, reference, *,
    input_name: str, batch_size: int, scratch: Path, work_dir: Path, rules, progress,
) -> None:  # fmt: skip
    """Time ``chosen`` (the plans to measure), all-INT8 and the references on the request's
    backends and batches, then set ``outcome.chosen`` to the fastest within ``budget``
    (``reference``: the FP32 logits of the held-out images)."""
    from alexnet_deploy.calib.bf16 import emulated_logits

    layers, labels, images = outcome.layers, data.eval.labels, data.eval.images
    all_float = Plan(frozenset(x.name for x in layers))
    fp32 = Evaluated(all_float, compare_logits(reference, reference, labels), keep="fp32")
    fp32.measured_note = "reference: the FP32 model itself"
    targets, references = [SpeedTarget(ALL_FP32, model_path, "fp32")], {ALL_FP32: fp32}
    floats = [fp32] if request.keep in ("fp32", "bf16") else []  # fp16: no plan of its keep
    bf16 = request.keep == "bf16"
    if bf16:  # the FP32 model run in bf16: the all-float plan whose float layers run bf16
        logits = emulated_logits(model_path, input_name, images, batch_size, precision="bf16")
        floats.append(Evaluated(all_float, compare_logits(reference, logits, labels)))
        floats[-1].measured_note = "reference: the FP32 model run in bf16"
        references[ALL_BF16] = floats[-1]
        targets.append(SpeedTarget(ALL_BF16, model_path, "bf16"))
    labelled = {}
    for e in [all_int8, *chosen]:
        label = e.plan.label(layers)
        if label not in labelled:
            labelled[label] = e
            targets.append(SpeedTarget(label, file_of(e.plan), "int8"))
    if request.nncf:
        from alexnet_deploy.precision.nncf_peer import nncf_accuracy_control

        peer, path = nncf_accuracy_control(model_path, data, request, scratch, progress)
        references["NNCF accuracy control"] = peer
        targets.append(SpeedTarget("NNCF accuracy control", path, "int8", quantizer="nncf"))
    speeds = measure_speeds(
        targets, request.backends, request.batches, work_dir, rules, rounds=request.rounds,
        progress=progress,
    )  # fmt: skip
    for t in targets:
        e = references.get(t.label) or labelled[t.label]
        e.speed = speeds[t.label]
        if t.label in labelled:
            e.measured_note = "measured" if e in chosen else "measured as a reference"
        if bf16 and t.label != ALL_FP32 and t.quantizer == "qdq":
            backend = request.backends[0]  # openvino alone times bf16 (PlanRequest.check)
            progress(f"fidelity as executed by {backend}: {t.label}")
            logits = executed_logits(t, backend, request.batches, work_dir, images)
            e.executed = compare_logits(reference, logits, labels)
            e.executed_on = backend
    outcome.references = {**references, **outcome.references}
    ranked = [e for e in [*chosen, *floats] if e.within(budget)]
    outcome.chosen = max(ranked, key=lambda e: speed_score(e.speed, fp32.speed))
    outcome.choice_rule = (
        "the fastest measured plan within the budget ("
        + ("emulated and as executed; all-FP32 and all-BF16 included" if bf16 else "all-FP32 "
           "included" if floats else "emulated")
        + f"): highest geometric mean of images/s over {', '.join(sorted(fp32.speed))}, "
        "relative to all-FP32"
    )  # fmt: skip
    if outcome.chosen is fp32:
        outcome.notes.append(
            "no plan with INT8 layers ran faster than the FP32 model on this machine: the plan "
            "is all-float (INT8 does not pay here at these batch sizes)"
            + ("; nor did bf16 (all-BF16 was timed beside it)" if bf16 else "")
        )


def chosen_keep(outcome) -> str:
    """What the chosen plan's float layers run in: its own (all-FP32) or the request's."""
    return outcome.chosen.keep or outcome.request.keep
