"""The matrix: build (or reuse) each engine, measure each configuration, pair each row with
its fidelity against FP32. A row that fails is marked failed with its reason and the rest goes
on; Ctrl-C stops the matrix with every finished row kept."""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from alexnet_deploy import constants as C
from alexnet_deploy.bench.config import BenchConfig
from alexnet_deploy.bench.matrix import expand as expand  # re-exported: the matrix's cases
from alexnet_deploy.bench.matrix import refused_cases
from alexnet_deploy.bench.matrix import supported as supported
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

    def of(
        self, infer: Callable[[np.ndarray], np.ndarray], max_batch: int, static: bool = False
    ) -> Fidelity:
        """``static``: the engine takes ``max_batch`` images only, so a short last chunk is
        filled up with the first images again and their logits dropped (never timed)."""
        chunks, count = [], len(self.images)
        for start in range(0, count, max_batch):
            taken = np.arange(start, start + max_batch if static else min(count, start + max_batch))
            chunks.append(infer(self.images[taken % count])[: count - start])
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

    def check_fidelity(self, probe: FidelityProbe, infer) -> None:
        """The row's fidelity, once, through ``infer`` (outside the timed region); a
        configuration beyond the budget is refused, not measured."""
        static = self.prepared.static_batch is not None  # its one batch: the last one filled
        self.fidelity = probe.of(infer, self.max_batch, static)
        if self.case.precision != "fp32" and self.artifact is not None:
            emulated = probe.emulated(self.artifact, self.max_batch, self.case.precision)
            self.fidelity = replace(self.fidelity, emulated_top1_agreement=emulated)
        over = probe.over_budget(self.case, self.fidelity)
        if over:
            raise AlexnetDeployError(over)

    def measure(
        self, probe: FidelityProbe, batch: np.ndarray, config: BenchConfig, seed: int
    ) -> Measurement:
        """One round: activate the target, check fidelity the first time, measure, free."""
        with self.workers() as workers:
            if self.fidelity is None:
                self.check_fidelity(probe, workers[0])
            measured = _measure(self.case, workers, batch, config, seed)
        self.measurements.append(measured)
        return measured


def timed_batches(sizes, image_shape, seed: int, inputs: np.ndarray | None = None) -> dict:
    """The input each batch size is timed on, once the sizes are known to fit in memory: real
    preprocessed images (``inputs``) repeated to fill it, else seeded standard-normal tensors
    (float32 directly: no float64 copy)."""
    check_batch_memory(sizes, image_shape)
    if inputs is not None and len(inputs):
        return {b: np.ascontiguousarray(inputs[np.arange(b) % len(inputs)]) for b in sizes}
    rng = np.random.default_rng(seed)
    return {b: rng.standard_normal((b, *image_shape), dtype=np.float32) for b in sizes}


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
    cases, not_measured = refused_cases(model, config, backends, served)
    if served is not None:
        cases = served_cases(cases)
    batches = timed_batches(config.matrix.batches, probe.images.shape[1:], seed, inputs)
    runs = [CaseRun(case, model, work_dir, served) for case in cases]
    result = run_cases(
        runs, config, probe, ceilings, batches, seed=seed, on_row=on_row, progress=progress
    )
    result.not_measured[:0] = not_measured
    return result


def run_cases(
    runs: list[CaseRun],
    config: BenchConfig,
    probe: FidelityProbe,
    ceilings: Ceilings | None,
    batches: dict[int, np.ndarray],
    *,
    seed: int = C.DEFAULT_SEED,
    on_row: Callable[[BenchRow], None] = lambda r: None,
    progress=None,
    admit: Callable[[Case], str | None] | None = None,
) -> BenchResult:
    """Measure ``runs`` (one model's cases, each prepared in its first round) in
    ``config.rules.repeat`` rounds, on the input of each one's batch (``batches``). ``admit``,
    asked before a case's first round, may leave it out with why (tune's time budget): it is
    listed as not measured."""
    result = BenchResult()
    failures: dict[Case, BenchRow] = {}
    macs = macs_per_image(runs[0].model) if runs else 0
    rounds = config.rules.repeat
    task = progress.add_task("bench", total=len(runs) * rounds) if progress else None
    finished: set[Case] = set()

    def finish(run: CaseRun) -> None:
        finished.add(run.case)
        if run.case in failures:
            row = failures[run.case]
        elif run.measurements:
            row = _row(run.case, run, config, ceilings, macs)
        else:
            return
        result.rows.append(row)
        on_row(row)

    try:
        for round_index in range(rounds):
            for run in runs:
                case = run.case
                if case in failures or case in finished:
                    continue
                if round_index == 0 and admit is not None and (why := admit(case)):
                    result.not_measured.append(NotMeasured(case.label, why))
                    finished.add(case)  # left out: no row
                    if progress:
                        progress.advance(task, rounds)
                    continue
                if progress:
                    progress.update(
                        task,
                        description=case.label
                        + (f" (round {round_index + 1}/{rounds})" if rounds > 1 else ""),
                    )
                try:
                    if run.prepared is None:
                        run.prepare()
                    m = run.measure(probe, batches[case.batch], config, seed + round_index)
                    result.samples.append(RoundSamples(case, round_index, m.samples_ns))
                except KeyboardInterrupt:
                    raise
                except Exception as err:  # a backend failing mid-matrix must not stop the others
                    failures[case] = _failure(case, err)
                if progress:
                    progress.advance(task)
                if round_index == rounds - 1 or case in failures:
                    finish(run)
    except KeyboardInterrupt:
        result.interrupted = True
        for run in runs:
            if run.case not in finished:
                finish(run)
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
