"""tune: find the fastest engine this machine can run, under a constraint, with the tool's own
bench; save the choice so build and bench can reuse it.

The search space is a bench matrix (runtime x precision x INT8 route x batch, each engine
compiled for its own batch where it can) measured in throughput mode, searched in stages within
a time budget (bench/tune_search.py: the static batch against the dynamic range, the number of
concurrent requests, an INT8 engine's float parts in bf16, then the finalists confirmed in
interleaved rounds): INT8, and bf16 where this CPU has native BF16 and a runtime searched
computes it (OpenVINO, PyTorch); every candidate keeps its fidelity against FP32 (computed as in
bench, where a bf16 row is held to the budget emulated and as executed). The constraint filters
(p99 bound, top-1 agreement floor); the Pareto front of throughput against p99 is reported; the
chosen configuration is the one meeting the constraint with the best median over the confirm
stage's rounds (bench/tune_confirm.py; the highest throughput where none was confirmed), set
beside each runtime used directly with its documented throughput settings, measured in the same
rounds (direct_tput.versus_direct). What the terminal and tuned.json say: bench/tune_report.py.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from alexnet_deploy import constants as C
from alexnet_deploy.bench.plot import pareto_front
from alexnet_deploy.bench.records import BenchRow
from alexnet_deploy.bench.tune_confirm import Confirmation, confirm
from alexnet_deploy.cases import Case
from alexnet_deploy.engines.registry import DIRECT_BACKENDS
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
    confirmation: Confirmation | None = None  # what the confirm stage's rounds decided


def choose(
    rows: list[BenchRow],
    constraint: Constraint,
    skipped: str | None = None,
    confirmed: Collection[Case] = (),
) -> TuneResult:
    """Pareto front (every successful candidate) and the fastest one meeting the constraint: of
    those the confirm stage measured (``confirmed``), the best median of its rounds, else the
    highest images/s; the runtimes used directly are measured beside the candidates, never
    chosen. ``skipped``: what the search's time budget left out, said where nothing meets the
    constraint."""
    candidates = [r for r in rows if r.case.backend not in DIRECT_BACKENDS]
    ok = [r for r in candidates if r.ok]
    points = [(r.images_per_s, r.p99_ms) for r in ok]
    front = sorted((ok[i] for i in pareto_front(points)), key=lambda r: r.p99_ms)
    rejected, feasible = {}, []
    for row in candidates:
        reason = constraint.why_not(row)
        if reason:
            rejected[row.label] = reason
        else:
            feasible.append(row)
    if not feasible:
        raise AlexnetDeployError(
            f"no configuration meets the constraint ({len(rows)} measured"
            + (f"; {skipped.split(':')[0]})" if skipped else ")"),
            hint="raise --time-budget (0: no limit)"
            if skipped and not candidates
            else "relax --max-p99-ms or --max-top1-drop, or widen the search (--batch, --streams)",
        )
    confirmation = confirm(rows, confirmed, lambda r: constraint.why_not(r) is None)
    if confirmation is not None:
        return TuneResult(rows, front, confirmation.chosen, rejected, confirmation)
    return TuneResult(rows, front, max(feasible, key=lambda r: r.images_per_s), rejected)


def default_quantizers() -> tuple[str, ...]:
    """The INT8 routes a search covers: NNCF's too where it is installed."""
    from alexnet_deploy.calib.nncf_quant import nncf_missing

    return ("qdq",) if nncf_missing() else ("qdq", "nncf")


def tuned_quantizers(choice: Case) -> tuple[str, ...]:
    """Bench the tuned engine's route, and NNCF's beside it where installed (the peer a user of
    OpenVINO's documentation would build)."""
    return tuple(dict.fromkeys((choice.quantizer, *default_quantizers())))


def tuned_comparison(choice: Case, rows: list[BenchRow]) -> dict:
    """The tuned engine's row against the best row of a runtime used directly with its
    documented throughput settings (as tune measured them: bench --tuned runs those), same run,
    both named in full (route, batch, static or dynamic, requests)."""
    from alexnet_deploy.bench.direct_tput import DOCUMENTED, Ratio, documented_settings
    from alexnet_deploy.bench.pipeline import unstable_note

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
    found, peer = Ratio.of(tuned, best), best.case
    ratio, per_round, pooled, how = found.ratio, found.per_round, found.pooled, found.how
    runtime, settings = DOCUMENTED[peer.backend].name, documented_settings(peer)
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
                "static": peer.static,
                "settings": settings,
            },
            "peer_images_per_s": best.images_per_s,
            "target": C.TUNED_OVER_PEER_TARGET,
            "met": ratio >= C.TUNED_OVER_PEER_TARGET,
            "text": f"tuned {tuned.label} ({tuned.images_per_s:.1f} images/s) vs the best row of "
            f"a runtime used directly, {runtime} on the {peer.precision} ({peer.quantizer}) "
            f"file with its documented throughput settings ({settings}; "
            f"{best.images_per_s:.1f} images/s): {ratio:.2f}x, {how} (pooled {pooled:.2f}x; "
            f"target >= {C.TUNED_OVER_PEER_TARGET}x)" + unstable_note(tuned, best),
        }
    }


# bench flags a tuned configuration decides (--batch may add batches beside the tuned one)
_TUNED_DECIDES = {
    "backends": "--backend",
    "precisions": "--precision",
    "modes": "--mode",
    "threads": "--threads",
    "streams": "--streams",
    "quantizers": "--quantizer",
    "statics": "--static",
    "float_precisions": "--float-precision",
}


def tuned_matrix_flags(choice: Case, flags: dict) -> dict:
    """``bench --tuned``: the matrix flags of the tuned engine and any extra batches asked for;
    bench's loop adds the runtimes used directly beside it, with their documented throughput
    settings as tune measured them (direct_tput.with_documented_peers; a bf16 engine's peers
    run the FP32 model: they run no bf16 of their own). A flag the tuned configuration decides
    may not also be given: it would be overridden, so it is refused instead."""
    given = [k for k in _TUNED_DECIDES if flags.get(k) not in (None, ())]
    if given:
        raise UsageError(
            f"--tuned decides {', '.join(_TUNED_DECIDES[k] for k in given)}; "
            "drop them, or bench without --tuned",
            hint="--batch may add batch sizes beside the tuned one",
        )
    extra = flags.get("batches") or ()
    return {
        **flags,
        "backends": (choice.backend,),
        "precisions": (choice.precision,),
        "batches": tuple(dict.fromkeys([choice.batch, *extra])),
        "modes": (choice.mode,),
        "threads": (choice.threads,),
        "streams": (choice.streams,),
        "quantizers": tuned_quantizers(choice),
        # the engine compiled for its batch (each extra batch its own), its float parts
        "statics": (choice.static,),
        "float_precisions": (choice.float_precision,),
    }


def tuned_build_settings(choice: Case, max_batch: int) -> dict:
    """``build --tuned``: the engine settings the tuner chose (its batch fits the profile; a
    static choice is compiled for that batch alone)."""
    return {
        "backend": choice.backend,
        "precision": choice.precision,
        "threads": choice.threads,
        "streams": choice.streams,
        "hint": "throughput",
        "quantizer": choice.quantizer,
        "max_batch": max(max_batch, choice.batch),
        "static_batch": choice.batch if choice.static else None,
        "float_precision": choice.float_precision,
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
    """The stage-1 space of ``tune`` (bench/tune_search.py): runtimes (ORT and OpenVINO unless
    given) x precisions (``default_precisions`` unless given) x batch x threads (C.TUNE_BATCHES
    and the runtime's threads unless given) x every INT8 route installed, throughput mode, each
    engine static and dynamic (the search runs the static one first, where the runtime can), at
    the given streams (None: the runtime's optimal number of requests, read by the search)."""
    from alexnet_deploy.bench.config import BenchConfig, Matrix, MeasureRules

    backends = backends or ("ort", "openvino")
    matrix = Matrix(
        backends=backends,
        precisions=precisions or default_precisions(backends),
        batches=batches or C.TUNE_BATCHES,
        modes=("throughput",),
        streams=streams or (None,),
        threads=threads or (None,),
        quantizers=quantizers or default_quantizers(),
        statics=(False, True),
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
