"""tune: find the fastest engine this machine can run, under a constraint, with the tool's own
bench; save the choice so build and bench can reuse it.

The search space is a bench matrix (runtime x precision x batch x concurrent requests x
threads) measured in throughput mode: INT8, and bf16 where this CPU has native BF16 and a
runtime searched computes it (OpenVINO, PyTorch); every candidate keeps its fidelity against
FP32 (computed as in bench, where a bf16 row is held to the budget emulated and as executed).
The constraint filters (p99 bound, top-1 agreement floor); the Pareto front of throughput
against p99 is reported; the chosen configuration is the highest-throughput one that meets the
constraint.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from alexnet_deploy import constants as C
from alexnet_deploy.bench.plot import pareto_front
from alexnet_deploy.bench.records import BenchRow
from alexnet_deploy.cases import Case
from alexnet_deploy.errors import AlexnetDeployError, UsageError
from alexnet_deploy.fileio import write_json_atomic

TUNED_SCHEMA = "alexnet-deploy/tuned/1"


@dataclass(frozen=True)
class Constraint:
    max_p99_ms: float | None = None
    min_top1_agreement: float = 1 - C.DEFAULT_MAX_TOP1_DROP / 100

    def __post_init__(self) -> None:
        if self.max_p99_ms is not None and self.max_p99_ms <= 0:
            raise UsageError(f"--max-p99-ms must be > 0, got {self.max_p99_ms}")
        if not 0 <= self.min_top1_agreement <= 1:
            raise UsageError(
                f"top-1 agreement floor must be in [0, 1], got {self.min_top1_agreement}"
            )

    def why_not(self, row: BenchRow) -> str | None:
        if not row.ok:
            return row.reason or "failed"
        if self.max_p99_ms is not None and row.p99_ms > self.max_p99_ms:
            return f"p99 {row.p99_ms:.1f} ms > {self.max_p99_ms:g} ms"
        agreement = row.top1_agreement or 0.0
        if agreement < self.min_top1_agreement:
            return f"top-1 agreement {agreement:.3f} < {self.min_top1_agreement:.3f}"
        return None


@dataclass
class TuneResult:
    rows: list[BenchRow]
    front: list[BenchRow]
    chosen: BenchRow
    rejected: dict[str, str]  # configuration label -> why it was not chosen


def choose(rows: list[BenchRow], constraint: Constraint) -> TuneResult:
    """Pareto front (all successful rows) and the fastest row meeting the constraint."""
    ok = [r for r in rows if r.ok]
    points = [(r.images_per_s, r.p99_ms) for r in ok]
    front = sorted((ok[i] for i in pareto_front(points)), key=lambda r: r.p99_ms)
    rejected, feasible = {}, []
    for row in rows:
        reason = constraint.why_not(row)
        if reason:
            rejected[row.label] = reason
        else:
            feasible.append(row)
    if not feasible:
        raise AlexnetDeployError(
            f"no configuration meets the constraint ({len(rows)} measured)",
            hint="relax --max-p99-ms or --max-top1-drop, or widen the search (--batch, --streams)",
        )
    chosen = max(feasible, key=lambda r: r.images_per_s)
    return TuneResult(rows, front, chosen, rejected)


def front_point(row: BenchRow) -> dict:
    """What a point of the Pareto front shows, in the terminal and in the saved choice."""
    c = row.case
    return {
        "backend": c.backend,
        "precision": c.precision,
        "batch": c.batch,
        "streams": c.streams,
        "threads": c.threads,
        "quantizer": c.quantizer,
        "images_per_s": row.images_per_s,
        "p50_ms": row.p50_ms,
        "p99_ms": row.p99_ms,
        "top1_agreement": row.top1_agreement,
        "unstable": row.unstable,  # the row's own measurements disagree: a choice not to trust
        "instability": row.instability,
    }


def front_rows(result: TuneResult) -> list[dict]:
    return [front_point(r) for r in result.front]


def tuned_record(
    result: TuneResult, constraint: Constraint, model: Path, report_path: Path | None
) -> dict:
    """The saved choice (tuned.json): its configuration (a ``Case``'s fields, read back by
    ``tuned_choice``), what was measured for it, the front and the report."""
    row, c = result.chosen, result.chosen.case
    fidelity = row.fidelity
    return {
        "schema": TUNED_SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": str(model),
        "constraint": asdict(constraint),
        "choice": c.key(),
        "measured": {
            "images_per_s": row.images_per_s,
            "p50_ms": row.p50_ms,
            "p99_ms": row.p99_ms,
            "top1_agreement": row.top1_agreement,
            "centered_cosine": None if fidelity is None else fidelity.centered_cosine,
            "unstable": row.unstable,
            "instability": row.instability,
        },
        "front": front_rows(result),
        "report": None if report_path is None else str(report_path),
    }


def default_quantizers() -> tuple[str, ...]:
    """The INT8 routes a search covers: NNCF's too where it is installed."""
    from alexnet_deploy.calib.nncf_quant import nncf_missing

    return ("qdq",) if nncf_missing() else ("qdq", "nncf")


def tuned_quantizers(choice: Case) -> tuple[str, ...]:
    """Bench the tuned engine's route, and NNCF's beside it where installed (the peer a user of
    OpenVINO's documentation would build)."""
    return tuple(dict.fromkeys((choice.quantizer, *default_quantizers())))


def tuned_comparison(choice: Case, rows: list[BenchRow]) -> dict:
    """The tuned engine's row against the best row of a runtime used directly, same run."""
    from alexnet_deploy.bench.pipeline import unstable_note
    from alexnet_deploy.engines.registry import DIRECT_BACKENDS

    ok = [r for r in rows if r.ok]
    mine = [
        r
        for r in ok
        if (r.case.backend, r.case.precision, r.case.quantizer, r.case.batch)
        == (choice.backend, choice.precision, choice.quantizer, choice.batch)
    ]
    peers = [r for r in ok if r.case.backend in DIRECT_BACKENDS]
    if not mine or not peers:
        return {}
    tuned, best = mine[0], max(peers, key=lambda r: r.images_per_s)
    pooled, peer = tuned.images_per_s / best.images_per_s, best.case
    mine_rounds, peer_rounds = tuned.round_images_per_s, best.round_images_per_s
    if mine_rounds and peer_rounds and len(mine_rounds) == len(peer_rounds):
        # the median of the per-round ratios: each round measured both rows minutes apart at most
        per_round = [m / p for m, p in zip(mine_rounds, peer_rounds, strict=True)]
        ratio, how = float(np.median(per_round)), f"median of {len(per_round)} paired rounds"
    else:
        per_round, ratio, how = [], pooled, "pooled"
    return {
        "tuned_vs_best_peer": {
            "ratio": ratio,
            "per_round": per_round,
            "pooled_ratio": pooled,
            "tuned_images_per_s": tuned.images_per_s,
            "peer": {
                "backend": peer.backend,
                "precision": peer.precision,
                "quantizer": peer.quantizer,
                "batch": peer.batch,
                "streams": peer.streams,
            },
            "peer_images_per_s": best.images_per_s,
            "target": C.TUNED_OVER_PEER_TARGET,
            "met": ratio >= C.TUNED_OVER_PEER_TARGET,
            "text": f"tuned {choice.backend} ({tuned.images_per_s:.1f} images/s) vs the best peer row, "
            f"{peer.backend} {peer.precision} ({peer.quantizer}) "
            f"({best.images_per_s:.1f} images/s): {ratio:.2f}x, {how} (pooled {pooled:.2f}x; "
            f"target >= {C.TUNED_OVER_PEER_TARGET}x)" + unstable_note(tuned, best),
        }
    }


# bench flags a tuned configuration decides (--batch may add batches beside the tuned one)
_TUNED_DECIDES = ("backends", "precisions", "modes", "threads", "streams", "quantizers")


def tuned_matrix_flags(choice: Case, flags: dict) -> dict:
    """``bench --tuned``: the matrix flags of the tuned engine, with the runtimes used directly
    beside it (its peers) and any extra batches asked for. A flag the tuned configuration
    decides may not also be given: it would be overridden, so it is refused instead."""
    from alexnet_deploy.engines.registry import DIRECT_BACKENDS

    given = [k for k in _TUNED_DECIDES if flags.get(k) not in (None, ())]
    if given:
        raise UsageError(
            f"--tuned decides {', '.join('--' + k.rstrip('s') for k in given)}; "
            "drop them, or bench without --tuned",
            hint="--batch may add batch sizes beside the tuned one",
        )
    extra = flags.get("batches") or ()
    # a runtime used directly runs no bf16 row (its defaults: its fp32 row says what it
    # computed in, bf16 where the CPU has it): a bf16 engine's peers are those fp32 rows
    peers = ("fp32",) if choice.precision == "bf16" else ()
    return {
        **flags,
        "backends": (choice.backend, *DIRECT_BACKENDS),
        "precisions": (choice.precision, *peers),
        "batches": tuple(dict.fromkeys([choice.batch, *extra])),
        "modes": (choice.mode,),
        "threads": (choice.threads,),
        "streams": (choice.streams,),
        "quantizers": tuned_quantizers(choice),
    }


def tuned_build_settings(choice: Case, max_batch: int) -> dict:
    """``build --tuned``: the engine settings the tuner chose (its batch fits the profile)."""
    return {
        "backend": choice.backend,
        "precision": choice.precision,
        "threads": choice.threads,
        "streams": choice.streams,
        "hint": "throughput",
        "quantizer": choice.quantizer,
        "max_batch": max(max_batch, choice.batch),
    }


def default_precisions(backends: tuple[str, ...]) -> tuple[str, ...]:
    """What a search covers unless told: INT8, and bf16 where this CPU has native BF16 and a
    runtime searched computes it (OpenVINO, PyTorch; ONNX Runtime's CPU provider has no bf16
    kernels): never bf16 emulated at a loss."""
    from alexnet_deploy.cpu_isa import this_cpu
    from alexnet_deploy.engines.registry import BACKEND_NAMES, GPU_BACKENDS, get_backend

    runs_bf16 = [
        b
        for b in backends
        if b in BACKEND_NAMES and b not in GPU_BACKENDS and "bf16" in get_backend(b).precisions
    ]
    return ("int8", "bf16") if runs_bf16 and this_cpu().bf16_native else ("int8",)


def tune_config(
    *,
    backends: tuple[str, ...],
    precisions: tuple[str, ...],
    batches: tuple[int, ...],
    streams: tuple[int, ...],
    threads: tuple[int, ...],
    quantizers: tuple[str, ...],
    min_seconds: float,
    max_seconds: float,
    repeat: int,
):
    """The search space of ``tune``: runtimes (ORT and OpenVINO unless given) x precisions
    (``default_precisions`` unless given) x batch x streams x threads (C.TUNE_BATCHES,
    C.TUNE_STREAMS and the runtime's threads unless given), throughput mode, every INT8 route
    installed."""
    from alexnet_deploy.bench.config import BenchConfig, Matrix, MeasureRules

    backends = backends or ("ort", "openvino")
    matrix = Matrix(
        backends=backends,
        precisions=precisions or default_precisions(backends),
        batches=batches or C.TUNE_BATCHES,
        modes=("throughput",),
        streams=streams or C.TUNE_STREAMS,
        threads=threads or (None,),
        quantizers=quantizers or default_quantizers(),
    )
    rules = MeasureRules(
        min_seconds=min_seconds, max_seconds=max(max_seconds, min_seconds), repeat=repeat
    )
    return BenchConfig(matrix, rules)


def save_tuned(record: dict, path: Path) -> Path:
    return write_json_atomic(path, record)


def load_tuned(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise AlexnetDeployError(
            f"tuned configuration {path} not found", hint="run 'alexnet-deploy tune' first"
        ) from None
    except ValueError as err:
        raise AlexnetDeployError(
            f"tuned configuration {path} is corrupt ({err})", hint="run 'alexnet-deploy tune' again"
        ) from None
    if data.get("schema") != TUNED_SCHEMA:
        raise AlexnetDeployError(
            f"{path} is not a tuned configuration (schema {data.get('schema')!r})"
        )
    return data


def tuned_choice(path: Path) -> Case:
    """The configuration a tuned file chose (the file's edge: a record's ``choice``)."""
    return Case.from_row(load_tuned(path)["choice"])
