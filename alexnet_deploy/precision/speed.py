"""Images/s of a few ONNX files (precision plans and their references) on the CPU runtimes,
with bench's own rules: the tool's engines (built or reused like ``build``), bench's timed
latency loop, rounds interleaved across every file so a shared machine's drift spreads over
all of them, the median round kept."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alexnet_deploy import constants as C
from alexnet_deploy.cases import Case
from alexnet_deploy.progress import Progress

# a plan's file decides each layer's precision (all-FP32 is the all-float plan): its speeds are
# filed under a case whose precision says so, as a served model's say "served"
PLAN_PRECISION = "plan"


@dataclass(frozen=True)
class SpeedTarget:
    label: str
    path: Path
    precision: str  # what BuildOptions calls it: fp32 (bf16) for the FP32 model, int8 for the rest
    quantizer: str = "qdq"


def speed_case(backend: str, batch: int) -> Case:
    """The configuration a plan is timed in: bench's latency loop, one request at a time. Its
    label ("ort plan b1 latency") keys the plan's speeds in every table, plot and JSON."""
    return Case(backend, PLAN_PRECISION, batch, "latency")


def measure_speeds(
    targets: list[SpeedTarget],
    backends: tuple[str, ...],
    batches: tuple[int, ...],
    work_dir: Path,
    rules,
    *,
    rounds: int = C.PLAN_ROUNDS,
    seed: int = C.DEFAULT_SEED,
    progress: Progress = lambda _m: None,
) -> dict[str, dict[str, float]]:
    """label -> {"ort plan b1 latency": images/s, ...} (``speed_case``'s labels): the median
    over ``rounds`` of each round's rate."""
    from alexnet_deploy.bench.measure import measure_latency
    from alexnet_deploy.engines.build import build_engine
    from alexnet_deploy.engines.registry import get_backend
    from alexnet_deploy.onnx_model import read_artifact

    shape = read_artifact(targets[0].path).image_shape
    rng = np.random.default_rng(seed)
    inputs = {b: rng.standard_normal((b, *shape), dtype=np.float32) for b in batches}
    engines = {}
    for t in targets:
        for backend in backends:
            progress(f"building {backend} engine: {t.label}")
            engines[(t.label, backend)], _ = build_engine(
                t.path, backend, _options(t, batches), work_dir
            )
    rates: dict[tuple[str, str], list[float]] = {}
    for round_index in range(rounds):
        for t in targets:
            for backend in backends:
                progress(f"round {round_index + 1}/{rounds}: {backend} {t.label}")
                with get_backend(backend).runner(engines[(t.label, backend)]) as runner:
                    for batch in batches:
                        m = measure_latency(runner.infer, inputs[batch], rules)
                        key = (t.label, speed_case(backend, batch).label)
                        rates.setdefault(key, []).append(m.images_per_second)
    found: dict[str, dict[str, float]] = {}
    for (label, key), values in rates.items():
        found.setdefault(label, {})[key] = float(np.median(values))
    return found


def _options(target: SpeedTarget, batches: tuple[int, ...]):
    """The build options a target is timed with (one engine per target, backend and run)."""
    from alexnet_deploy.engines.options import BuildOptions

    return BuildOptions(
        precision=target.precision, max_batch=max(batches), quantizer=target.quantizer
    )


def executed_logits(
    target: SpeedTarget, backend: str, batches: tuple[int, ...], work_dir: Path, images
) -> np.ndarray:
    """``images`` through the engine :func:`measure_speeds` times for ``target`` on ``backend``
    (the same options: the engine is reused), in batches of its largest: its fidelity as
    executed, outside any timed loop."""
    from alexnet_deploy.engines.build import build_engine
    from alexnet_deploy.engines.registry import get_backend

    engine, _ = build_engine(target.path, backend, _options(target, batches), work_dir)
    step = max(batches)
    with get_backend(backend).runner(engine) as runner:
        return np.concatenate(
            [runner.infer(images[i : i + step]) for i in range(0, len(images), step)]
        )


def speed_score(speed: dict[str, float], reference: dict[str, float]) -> float:
    """One figure to rank plans by: the geometric mean, over every backend and batch measured,
    of the plan's images/s relative to the reference's (so batch 1 and batch 32 count alike)."""
    keys = [k for k in speed if reference.get(k)]
    if not keys:
        return 0.0
    return float(np.exp(np.mean([np.log(speed[k] / reference[k]) for k in keys])))
