"""plan's one-shot sensitivity, for networks past C.PLAN_PER_LAYER_MAX weight layers: one pass
of the all-INT8 file beside the FP32 model (compare's per-layer figures, on held-out images),
and per weight layer the noise it adds: its output's error power over signal minus the largest
its inputs already carry. Two passes per layer (plan's method for small networks) cost 2n plan
files and held-out evaluations, about 18 minutes for ResNet-50's 54 layers on 2 cores; this
costs about one. It is a proxy for what keeping the layer float regains (noise propagates and
is amplified or damped on the way), so the greedy candidates it orders are each evaluated for
real.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from alexnet_deploy import constants as C
from alexnet_deploy.precision.plans import WeightLayer
from alexnet_deploy.precision.search import Sensitivity
from alexnet_deploy.progress import Progress, silent


def _noise(snr_db: float) -> float:
    """Error power over signal power (0: exact)."""
    return 0.0 if snr_db == math.inf else 10 ** (-snr_db / 10)


def one_shot_sensitivity(
    reference: Path,
    all_int8: Path,
    layers: list[WeightLayer],
    images: np.ndarray,
    batch_size: int,
    progress: Progress = silent,
) -> list[Sensitivity]:
    """Each weight layer's noise added in ``all_int8`` (on the first C.PLAN_ONE_SHOT_IMAGES
    of ``images``): its output's relative error power (a layer whose activation the quantizer
    folded into it: the activation's) minus the largest of the tensors it reads."""
    import onnx

    from alexnet_deploy.precision.compare import compare_models
    from alexnet_deploy.precision.layers import folded_chain

    comparison = compare_models(
        reference, all_int8, images[: C.PLAN_ONE_SHOT_IMAGES], batch_size=batch_size,
        progress=progress,
    )  # fmt: skip
    snr = {f.name: f.snr_db for f in comparison.layers}
    graph = onnx.load(str(reference), load_external_data=False).graph
    constants = {i.name for i in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    carried: dict[str, float] = {}

    def upstream(tensor: str) -> float:
        """The noise a tensor carries: its own where compare measured it, else the largest of
        the tensors it is computed from (0 at the graph's inputs and constants)."""
        if tensor in snr:
            return _noise(snr[tensor])
        if tensor not in carried:
            node = producer.get(tensor)
            inputs = [] if node is None else [i for i in node.input if i and i not in constants]
            carried[tensor] = max((upstream(i) for i in inputs), default=0.0)
        return carried[tensor]

    rows = []
    for x in layers:
        out = x.name
        if out not in snr:  # folded: the BatchNorm or activation after it holds its value
            after = [t for t in folded_chain(out, consumers) if t in snr]
            out = after[0] if after else out
        node = producer[x.name]
        reads = [i for i in node.input if i and i not in constants]
        before = max((upstream(i) for i in reads), default=0.0)
        after_noise = upstream(out)
        rows.append(
            Sensitivity(
                x.name,
                noise_added=max(after_noise - before, 0.0),
                snr_db=snr.get(out),
            )
        )
    return rows
