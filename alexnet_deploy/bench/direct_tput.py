"""The runtimes used directly with the settings their documentation recommends for throughput
(``DOCUMENTED``): the rows a user would otherwise try, which tune measures beside its own
candidates in the same run (bench/tune_search.py) and ``bench --tuned`` beside the tuned engine
(:func:`with_documented_peers`), the cases they are (:func:`documented_cases`), how OpenVINO's
is measured (:class:`QueueRun`, its asynchronous queue: bench/direct.py), and tune's choice
against each of them (:func:`versus_direct`: the ratio, and each one's share of the INT8 compute
peak)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alexnet_deploy import constants as C
from alexnet_deploy.bench.config import BenchConfig, Matrix
from alexnet_deploy.bench.records import BenchResult, BenchRow
from alexnet_deploy.bench.run import CaseRun, FidelityProbe, run_cases, run_matrix, timed_batches
from alexnet_deploy.cases import Case

OPENVINO = ("openvino", "openvino-direct")  # the runtime whose compiled model says its requests


@dataclass(frozen=True)
class Documented:
    """A runtime used directly with the settings its documentation recommends for throughput."""

    name: str  # the runtime, as a sentence names it
    static: bool  # compiled for the row's batch alone
    callers: tuple[int, ...]  # concurrent calls; () the runtime's optimal number of requests
    settings: str  # in words, with {requests} and {batch} filled in


DOCUMENTED = {
    # OpenVINO's throughput guide and sample: a static shape, PERFORMANCE_HINT=THROUGHPUT and an
    # AsyncInferQueue of the optimal number of requests (bench/direct.py's openvino_queue)
    "openvino-direct": Documented(
        "OpenVINO", True, (), "THROUGHPUT hint, async queue, {requests} requests, static b{batch}"
    ),
    # ONNX Runtime: its default SessionOptions (all cores intra-op, ORT_ENABLE_ALL), the one
    # session called from one thread, and from two at once (Run is documented as thread-safe)
    "ort-direct": Documented(
        "ONNX Runtime",
        False,
        C.TUNE_DIRECT_ORT_CALLERS,
        "default session options, run from {requests} thread{s} at once, b{batch}",
    ),
}


def documented_settings(case: Case) -> str:
    """A direct row's settings in words ("THROUGHPUT hint, async queue, 2 requests, static b64")."""
    text = DOCUMENTED[case.backend].settings
    return text.format(requests=case.streams, batch=case.batch, s="s" * (case.streams != 1))


@dataclass(frozen=True)
class Ratio:
    """One row's images/s over another's: the median of the per-round ratios where both ran
    the same number of rounds (each round measured both minutes apart at most), else pooled."""

    ratio: float
    per_round: list[float]
    pooled: float
    how: str

    @classmethod
    def of(cls, mine: BenchRow, peer: BenchRow) -> Ratio:
        pooled = mine.images_per_s / peer.images_per_s
        mine_rounds, peer_rounds = mine.round_images_per_s, peer.round_images_per_s
        if mine_rounds and peer_rounds and len(mine_rounds) == len(peer_rounds):
            per_round = [m / p for m, p in zip(mine_rounds, peer_rounds, strict=True)]
            how = f"median of {len(per_round)} paired rounds" if len(per_round) > 1 else "one round"
            return cls(float(np.median(per_round)), per_round, pooled, how)
        return cls(pooled, [], pooled, "pooled")


class QueueRun(CaseRun):
    """OpenVINO used directly as its documentation recommends for throughput: each round
    compiles the artifact for the case's static batch with the throughput hint and keeps its
    asynchronous queue full (bench/direct.py)."""

    def prepare(self) -> None:
        super().prepare()
        self.prepared.max_batch = self.prepared.static_batch = self.case.batch

    def measure(self, probe: FidelityProbe, batch, config: BenchConfig, seed: int):
        from alexnet_deploy.bench.direct import measure_queue, openvino_queue

        read_back = self.prepared.info.computed_in is None  # once, in the first round
        with openvino_queue(self.artifact, self.case.batch, read_back) as compiled:
            self.prepared.info = self.prepared.info.with_computed(compiled.computed)
            if self.fidelity is None:
                self.check_fidelity(probe, compiled.infer)
            measured = measure_queue(compiled, batch, config.rules)
        self.measurements.append(measured)
        return measured


class OptimalRequests:
    """The runtime's optimal number of requests for a case of ``model``: what OpenVINO's
    throughput hint asks for, read from the case's artifact compiled for its batch (once each);
    C.TUNE_DEFAULT_REQUESTS elsewhere, or where OpenVINO cannot say."""

    def __init__(self, model: Path) -> None:
        self.model = model
        self._found: dict[tuple[Path, int], int] = {}

    def __call__(self, case: Case) -> int:
        from alexnet_deploy.bench.direct import available, openvino_optimal_requests
        from alexnet_deploy.engines.build import resolve_artifact

        if case.backend not in OPENVINO or not available("openvino-direct"):
            return C.TUNE_DEFAULT_REQUESTS
        artifact = resolve_artifact(self.model, case.precision, "openvino", case.quantizer)
        key = (artifact, case.batch)
        if key not in self._found:
            try:
                self._found[key] = openvino_optimal_requests(artifact, case.batch)
            except RuntimeError:  # OpenVINO cannot compile it: its rows fail with the reason
                self._found[key] = C.TUNE_DEFAULT_REQUESTS
        return self._found[key]


def documented_precision(precisions: tuple[str, ...]) -> str:
    """What the runtimes used directly run beside engines of ``precisions``: the INT8 artifact
    where INT8 is among them, else the FP32 model (they run no bf16 of their own: their fp32
    row says what they computed in, bf16 where the CPU has it)."""
    return "int8" if "int8" in precisions else "fp32"


def documented_cases(
    model: Path, names, matrix: Matrix, batches, optimal: OptimalRequests
) -> list[Case]:
    """Each runtime of ``names`` (``DOCUMENTED``'s, where installed) used directly with its
    documented throughput settings, at each of ``batches`` the model takes, on the artifact of
    every INT8 route of ``matrix`` (the FP32 model where it has no INT8)."""
    from alexnet_deploy.bench.direct import available
    from alexnet_deploy.onnx_model import read_artifact

    info, precision = read_artifact(model), documented_precision(matrix.precisions)
    routes = matrix.quantizers if precision == "int8" else ("qdq",)
    batches = [b for b in batches if info.batch_refusal(b) is None]
    cases = []
    for name in names:
        if name not in DOCUMENTED or not available(name):
            continue
        documented = DOCUMENTED[name]
        for quantizer in routes:
            for batch in batches:
                case = Case(name, precision, batch, "throughput", quantizer=quantizer)
                case = case.but(static=documented.static)
                callers = documented.callers or (optimal(case),)
                cases += [case.but(streams=n) for n in callers]
    return cases


def with_documented_peers(
    model: Path,
    config: BenchConfig,
    work_dir: Path,
    probe: FidelityProbe,
    ceilings,
    *,
    seed: int = C.DEFAULT_SEED,
    direct: bool = True,
    progress=None,
    served=None,
    inputs=None,
) -> BenchResult:
    """``bench --tuned``'s loop (BenchOptions.search, in place of run_matrix): the matrix's
    engines (the tuned one, at each batch asked for) and, with ``direct``, each runtime used
    directly with its documented throughput settings as tune measured them (not bench's rows at
    the runtimes' defaults), at the same batches and INT8 routes; every case in each round."""
    if served is not None:  # a model Triton serves: nothing is used directly
        return run_matrix(
            model, config, work_dir, probe, ceilings, seed=seed, direct=False,
            progress=progress, served=served, inputs=inputs,
        )  # fmt: skip
    from alexnet_deploy.bench.matrix import refused_cases

    m = config.matrix
    cases, not_measured = refused_cases(model, config, list(m.backends))
    if direct:
        cases += documented_cases(model, DOCUMENTED, m, m.batches, OptimalRequests(model))
    batches = timed_batches(m.batches, probe.images.shape[1:], seed, inputs)
    runs = [case_run(case, model, work_dir) for case in cases]
    result = run_cases(runs, config, probe, ceilings, batches, seed=seed, progress=progress)
    result.not_measured[:0] = not_measured
    return result


def case_run(case: Case, model, work_dir) -> CaseRun:
    """What measures ``case`` in tune: a runtime used directly through its asynchronous queue
    (OpenVINO's documented settings) in a :class:`QueueRun`, anything else as bench does."""
    documented = DOCUMENTED.get(case.backend)
    queue = documented is not None and not documented.callers
    return (QueueRun if queue else CaseRun)(case, model, work_dir)


def pct_int8_peak(row: BenchRow, int8_peak_gops: float | None) -> float | None:
    """The share of the machine's INT8 compute peak a row's throughput reaches (None: no
    ceilings, or no roofline on the row)."""
    if not int8_peak_gops or row.roofline is None or row.roofline.gflops is None:
        return None
    return 100 * row.roofline.gflops / int8_peak_gops


def versus_direct(
    chosen: BenchRow,
    rows: list[BenchRow],
    int8_peak_gops: float | None,
    peers: dict[str, BenchRow] | None = None,
) -> dict:
    """tune's choice against the fastest row of each runtime used directly with its documented
    throughput settings, in the same run (``peers``: the confirm stage's row of each, measured
    in the same interleaved rounds as the choice; else the fastest row): the ratio (the median
    of the per-round ratios where both ran the same rounds), each one's % of the INT8 compute
    peak, and whether the choice is at least C.TUNE_OVER_DIRECT_TARGET times each and reaches
    C.TUNE_PEAK_TARGET_PCT of the peak where any of them does (empty: no runtime used directly
    measured)."""
    from alexnet_deploy.bench.pipeline import unstable_note
    from alexnet_deploy.bench.tune_confirm import median_rate

    def rate(row: BenchRow) -> str:  # the median of its rounds where it ran several
        rounds = len(row.round_images_per_s or ())
        return f"median {median_rate(row):.0f}" if rounds > 1 else f"{row.images_per_s:.0f}"

    mine, runtimes, peers = f"tuned {chosen.case.label}", {}, peers or {}
    for name, documented in DOCUMENTED.items():
        ok = [r for r in rows if r.ok and r.case.backend == name]
        if not ok:
            continue
        best = peers.get(name) or max(ok, key=lambda r: r.images_per_s)
        found, settings = Ratio.of(chosen, best), documented_settings(best.case)
        runtimes[name] = {
            "runtime": documented.name,
            "settings": settings,
            "case": best.case.columns(),
            "images_per_s": best.images_per_s,
            "median_images_per_s": median_rate(best),
            "pct_int8_peak": pct_int8_peak(best, int8_peak_gops),
            "ratio": found.ratio,
            "per_round": found.per_round,
            "pooled_ratio": found.pooled,
            "how": found.how,
            "unstable": [r.label for r in (chosen, best) if r.unstable],
            "text": f"{mine}: {rate(chosen)} images/s = {found.ratio:.2f}x "
            f"{documented.name} used directly ({settings}: {rate(best)}; {found.how})"
            + unstable_note(chosen, best),
        }
    if not runtimes:
        return {}
    pct = pct_int8_peak(chosen, int8_peak_gops)
    reached = [
        e["runtime"]
        for e in runtimes.values()
        if (e["pct_int8_peak"] or 0) >= C.TUNE_PEAK_TARGET_PCT
    ]
    faster = all(e["ratio"] >= C.TUNE_OVER_DIRECT_TARGET for e in runtimes.values())
    at_peak = not reached or (pct or 0) >= C.TUNE_PEAK_TARGET_PCT
    shares = [f"the choice {_pct(pct)}"] + [
        f"{e['runtime']} used directly {_pct(e['pct_int8_peak'])}" for e in runtimes.values()
    ]
    return {
        "choice": chosen.case.columns(),
        "images_per_s": chosen.images_per_s,
        "median_images_per_s": median_rate(chosen),
        "pct_int8_peak": pct,
        "runtimes": runtimes,
        "target": {
            "ratio": C.TUNE_OVER_DIRECT_TARGET,
            "pct_int8_peak": C.TUNE_PEAK_TARGET_PCT,
            "peak_applies": bool(reached),  # some runtime used directly reaches that share
        },
        "met": faster and at_peak,
        "peak_text": f"% of the INT8 compute peak: {', '.join(shares)}",
        "text": "; ".join(e["text"] for e in runtimes.values())
        + f"; % of the INT8 compute peak: {', '.join(shares)}: "
        + ("**met**" if faster and at_peak else "**not met**")
        + f" (target: >= {C.TUNE_OVER_DIRECT_TARGET:g}x each, and >= {C.TUNE_PEAK_TARGET_PCT:g}% "
        "of the peak where a runtime used directly reaches it)",
    }


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"
