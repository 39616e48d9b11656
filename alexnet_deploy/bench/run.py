"""The matrix: build (or reuse) each engine, measure each configuration, pair each row with
its fidelity against FP32. A row that fails is marked failed with its reason and the rest goes
on; Ctrl-C stops the matrix with every finished row kept."""

from __future__ import annotations

import itertools
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from alexnet_deploy import constants as C
from alexnet_deploy.bench.config import BenchConfig
from alexnet_deploy.bench.measure import (
    Measurement,
    measure_latency,
    measure_server,
    measure_throughput,
)
from alexnet_deploy.bench.records import (
    BenchResult,
    BenchRow,
    EngineInfo,
    Fidelity,
    NotMeasured,
    RoundSamples,
)
from alexnet_deploy.bench.roofline import Ceilings, macs_per_image, roofline_of, weight_bytes
from alexnet_deploy.bench.stats import latency_stats, stability
from alexnet_deploy.bench.targets import Prepared, matrix_backends, served_cases, target_for
from alexnet_deploy.calib.fidelity import compare_logits
from alexnet_deploy.cases import Case
from alexnet_deploy.engines.options import PRECISIONS
from alexnet_deploy.errors import AlexnetDeployError, UsageError


def check_batch_memory(batches, image_shape, headroom: int = 4) -> None:
    """Refuse batches whose inputs (and the activations and outputs that scale with them,
    about ``headroom`` times the input for AlexNet) cannot fit in the memory available now,
    before anything is allocated."""
    from alexnet_deploy.sysinfo import available_memory_bytes

    available = available_memory_bytes()
    if available is None:
        return
    per_image = 4 * int(np.prod(image_shape))
    need = headroom * per_image * sum(batches)
    if need > available:
        largest = max(batches)
        fits = max(1, available // (headroom * per_image) - (sum(batches) - largest))
        raise UsageError(
            f"batch sizes {list(batches)} need about {need / 2**30:.1f} GiB for inputs and "
            f"activations; {available / 2**30:.1f} GiB is available",
            hint=f"use smaller batches (the largest that fits now is about {fits})",
        )


def expand(config: BenchConfig, backends: list[str]) -> list[Case]:
    """Every combination; the INT8 route only multiplies INT8 cases."""
    m = config.matrix
    cases = [
        Case(*values)
        for values in itertools.product(
            backends, m.precisions, m.batches, m.modes, m.threads, m.streams, m.quantizers
        )
    ]
    return list(
        dict.fromkeys(c if c.precision == "int8" else replace(c, quantizer="qdq") for c in cases)
    )


def supported(case: Case) -> str | None:
    """Why a combination is not run (None when it is): a precision its engine does not run
    (torch: the FP32 reference and bf16), or bf16 through a runtime used directly (it runs its
    own defaults: its fp32 row says what it computed in)."""
    from alexnet_deploy.engines.registry import BACKEND_NAMES, DIRECT_BACKENDS, get_backend

    if case.precision == "bf16" and case.backend in DIRECT_BACKENDS:
        return f"{case.backend} runs its own defaults: its fp32 row says what it computed in"
    if case.backend in BACKEND_NAMES:
        backend = get_backend(case.backend)
        if case.precision not in backend.precisions:
            return backend.refuses.get(case.precision) or (
                f"{case.backend} runs {', '.join(backend.precisions)}"
            )
    return None


def refused_cases(
    model: Path, config: BenchConfig, backends: list[str], served=None
) -> tuple[list[Case], list[NotMeasured]]:
    """The matrix's cases that run, and what it leaves out, with why: a combination its
    backend does not run (listed where the user named the backends: the default ones span
    what runs), a batch the model's graph does not take (always listed), and the torch
    backend among the default ones for a model it cannot rebuild (an imported ONNX file)."""
    from alexnet_deploy.engines.torch_backend import rebuild_refusal
    from alexnet_deploy.onnx_model import read_artifact

    info, named, left_out = read_artifact(model), bool(config.matrix.backends), []
    if not named and "torch" in backends and (why := rebuild_refusal(info)) is not None:
        backends = [b for b in backends if b != "torch"]
        left_out.append(NotMeasured("torch", f"left out of the default backends: {why.message}"))
    expanded = expand(config, backends)
    # served: the server's model decides its batch (its config's max_batch_size)
    batch = {c: None if served is not None else info.batch_refusal(c.batch) for c in expanded}
    backend = {c: supported(c) for c in expanded}
    cases = [c for c in expanded if backend[c] is None and batch[c] is None]
    if not cases and expanded:
        reasons = sorted(
            {
                f"{c.backend} {c.precision}: {backend[c]}"
                if backend[c]
                else f"batch {c.batch}: {batch[c]}"
                for c in expanded
            }
        )
        raise UsageError(f"nothing to measure: {'; '.join(reasons)}")
    left_out += [
        NotMeasured(c.label, batch[c] or backend[c])
        for c in expanded
        if batch[c] is not None or (named and backend[c] is not None)
    ]
    return cases, left_out


class FidelityProbe:
    """Fixed real inputs and their FP32 logits, computed once per run. A row's fidelity is
    as executed by its engine on this CPU; beside it, a reduced-precision artifact's emulated
    figure (what the file means, the same on every CPU), computed once per artifact.
    ``max_top1_drop``: the budget a bf16 row is held to (None: not enforced, the figures are
    uninformative: untrained weights or synthetic images)."""

    def __init__(
        self,
        images: np.ndarray,
        reference: np.ndarray,
        source: str,
        max_top1_drop: float | None = None,
    ) -> None:
        self.images, self.reference, self.source = images, reference, source
        self.max_top1_drop = max_top1_drop
        self._emulated: dict[str, float] = {}

    def emulated(self, artifact: Path, max_batch: int, precision: str = "") -> float:
        """``artifact``'s figure as the file means it; bf16's: rounded to bfloat16 in float
        (calib/bf16.py), whether ``artifact`` is the BF16 file, the FP32 model run in bf16 or
        a plan whose float layers run bf16."""
        from alexnet_deploy.calib.bf16 import emulated_logits
        from alexnet_deploy.onnx_model import read_artifact

        key = f"{artifact} {precision}"
        if key not in self._emulated:
            name = read_artifact(artifact).input.name
            logits = emulated_logits(artifact, name, self.images, max_batch, precision)
            self._emulated[key] = compare_logits(self.reference, logits).top1_agreement
        return self._emulated[key]

    def over_budget(self, case: Case, fidelity: Fidelity) -> str | None:
        """Why a bf16 row misses the budget, emulated or as executed (None: it does not).
        FP16 and INT8 rows run artifacts held to it when they were made; a CPU's bf16 runs the
        FP32 model, so its row is held here, on the probe's images: a disagreement with FP32
        bounds the top-1 accuracy lost."""
        if case.precision != "bf16" or self.max_top1_drop is None:
            return None
        for basis, agreement in (
            ("as executed", fidelity.top1_agreement),
            ("emulated", fidelity.emulated_top1_agreement),
        ):
            drop = None if agreement is None else 100 * (1 - agreement)
            if drop is not None and drop > self.max_top1_drop + 1e-9:
                return (
                    f"bf16 ({basis}) agrees with FP32 on {agreement:.1%} of {len(self.images)} "
                    f"images: top-1 drops up to {drop:.2f} points, over the budget of "
                    f"{self.max_top1_drop:g}"
                )
        return None

    def of(self, infer: Callable[[np.ndarray], np.ndarray], max_batch: int) -> Fidelity:
        chunks = [
            infer(self.images[i : i + max_batch]) for i in range(0, len(self.images), max_batch)
        ]
        f = compare_logits(self.reference, np.concatenate(chunks))
        return Fidelity(f.top1_agreement, f.centered_cosine, f.samples, self.source, "as-executed")


def _measure(
    case: Case, workers: list, batch: np.ndarray, config: BenchConfig, seed: int
) -> Measurement:
    if case.mode == "latency":
        return measure_latency(workers[0], batch, config.rules)
    if case.mode == "throughput":
        return measure_throughput(workers, batch, config.rules)
    return measure_server(workers, batch, config.rules, config.matrix.server_latency_bound_ms, seed)


class CaseRun:
    """One configuration across rounds: its target is prepared once (engine built or reused,
    artifact found), each round activates it, measures, and frees it again."""

    def __init__(self, case: Case, model: Path, work_dir: Path, served=None) -> None:
        self.case, self.model, self.work_dir = case, model, work_dir
        self.target = target_for(case.backend, served)
        self.measurements: list[Measurement] = []
        self.fidelity: Fidelity | None = None  # measured once, in the first round
        self.prepared: Prepared | None = None

    @property
    def max_batch(self) -> int:
        return self.prepared.max_batch

    @property
    def artifact(self) -> Path | None:
        return self.prepared.artifact

    @property
    def engine(self) -> EngineInfo | None:
        """What ran the case: known once prepared, and what it computed in once it ran."""
        return None if self.prepared is None else self.prepared.info

    def prepare(self) -> None:
        from alexnet_deploy.fileio import sha256_file

        prepared = self.target.prepare(self.case, self.model, self.work_dir)
        if prepared.artifact is not None:  # hashed once per run (cached by file version)
            prepared.info = replace(
                prepared.info,
                artifact_sha256=sha256_file(prepared.artifact),
                weight_bytes=weight_bytes(prepared.artifact),
            )
        self.prepared = prepared

    def workers(self):
        return self.target.workers(self.case, self.prepared)


def _failure(case: Case, err: BaseException) -> BenchRow:
    if isinstance(err, AlexnetDeployError):
        return BenchRow(case, "failed", err.message)
    return BenchRow(case, "failed", f"{type(err).__name__}: {err}", traceback.format_exc(limit=3))


def run_matrix(
    model: Path,
    config: BenchConfig,
    work_dir: Path,
    probe: FidelityProbe,
    ceilings: Ceilings | None,
    *,
    seed: int = C.DEFAULT_SEED,
    direct: bool = True,
    on_row: Callable[[BenchRow], None] = lambda r: None,
    progress=None,
    served=None,
    inputs: np.ndarray | None = None,
) -> BenchResult:
    """Measure every case; with ``repeat`` > 1 the whole matrix runs in rounds (case 1..N,
    then again), so slow drift of a shared machine spreads over every case instead of biasing
    whichever ran last."""
    backends = matrix_backends(config.matrix.backends, direct, served)
    result = BenchResult()
    cases, result.not_measured = refused_cases(model, config, backends, served)
    if served is not None:
        cases = served_cases(cases)
    runs = {case: CaseRun(case, model, work_dir, served) for case in cases}
    failures: dict[Case, BenchRow] = {}
    macs = macs_per_image(model)
    rounds = config.rules.repeat
    task = progress.add_task("bench", total=len(cases) * rounds) if progress else None
    rng = np.random.default_rng(seed)
    check_batch_memory(config.matrix.batches, probe.images.shape[1:])
    if inputs is not None and len(inputs):  # real preprocessed images, repeated to fill a batch
        batches = {
            b: np.ascontiguousarray(inputs[np.arange(b) % len(inputs)])
            for b in config.matrix.batches
        }
    else:
        batches = {  # float32 directly: no float64 copy at twice the size
            b: rng.standard_normal((b, *probe.images.shape[1:]), dtype=np.float32)
            for b in config.matrix.batches
        }

    finished: set[Case] = set()

    def finish(case: Case) -> None:
        finished.add(case)
        run = runs[case]
        if case in failures:
            row = failures[case]
        elif run.measurements:
            row = _row(case, run, config, ceilings, macs)
        else:
            return
        result.rows.append(row)
        on_row(row)

    try:
        for round_index in range(rounds):
            for case in cases:
                if case in failures:
                    continue
                if progress:
                    progress.update(
                        task,
                        description=case.label
                        + (f" (round {round_index + 1}/{rounds})" if rounds > 1 else ""),
                    )
                run = runs[case]
                try:
                    if run.prepared is None:
                        run.prepare()
                    with run.workers() as workers:
                        if run.fidelity is None:  # fidelity: outside the timed region
                            run.fidelity = probe.of(workers[0], run.max_batch)
                            if case.precision != "fp32" and run.artifact is not None:
                                emulated = probe.emulated(
                                    run.artifact, run.max_batch, case.precision
                                )
                                run.fidelity = replace(
                                    run.fidelity, emulated_top1_agreement=emulated
                                )
                            over = probe.over_budget(case, run.fidelity)
                            if over:  # not measured: a configuration beyond the budget
                                raise AlexnetDeployError(over)
                        m = _measure(case, workers, batches[case.batch], config, seed + round_index)
                    run.measurements.append(m)
                    result.samples.append(RoundSamples(case, round_index, m.samples_ns))
                except KeyboardInterrupt:
                    raise
                except Exception as err:  # a backend failing mid-matrix must not stop the others
                    failures[case] = _failure(case, err)
                if progress:
                    progress.advance(task)
                if round_index == rounds - 1 or case in failures:
                    finish(case)
    except KeyboardInterrupt:
        result.interrupted = True
        for case in cases:
            if case not in finished:
                finish(case)
    return result


def _row(
    case: Case, run: CaseRun, config: BenchConfig, ceilings: Ceilings | None, macs: int
) -> BenchRow:
    measurements = run.measurements
    pooled = np.concatenate([m.samples_ns for m in measurements])
    wall = sum(m.wall_seconds for m in measurements)
    inferences = sum(m.requests for m in measurements) / wall
    round_rates = tuple(m.images_per_second for m in measurements)
    spread = None
    if len(measurements) > 1:
        p50s = [float(np.median(m.samples_ns)) for m in measurements]
        spread = (max(p50s) - min(p50s)) / float(np.median(p50s))
    roofline = None
    weights = None if run.engine is None else run.engine.weight_bytes
    if ceilings is not None and weights is not None:
        computed = run.engine.computed_in  # what the runtime reports it ran: that peak
        roofline = roofline_of(
            inferences * case.batch,
            inferences,
            macs,
            weights,
            case.batch,
            computed if computed in PRECISIONS else case.precision,
            ceilings,
            # OpenVINO used directly picks bf16/fp16 itself where the CPU has them: where it
            # does not say what it ran, its ceiling is the fastest float path
            runtime_picks_float=case.backend == "openvino-direct" and computed is None,
            amx=run.engine.amx,  # AMX tiles ran, or not, as the runtime reports (None: unsaid)
        )
    return BenchRow(
        case,
        latency=latency_stats(pooled, config.rules.percentiles).scaled(1e-6),  # ns -> ms
        inferences_per_s=inferences,
        images_per_s=inferences * case.batch,
        wall_seconds=wall,
        rounds=len(measurements),
        round_images_per_s=round_rates,
        stop_reason=",".join(sorted({m.stop_reason for m in measurements})),
        macs_per_image=macs,
        engine=run.engine,
        fidelity=run.fidelity,
        repeat_p50_spread=spread,
        stability=stability(
            [m.samples_ns for m in measurements], round_rates, one_at_a_time=case.mode == "latency"
        ),
        server=measurements[-1].server if case.mode == "server" else None,
        roofline=roofline,
        measured_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
