"""tune: find the fastest engine this machine can run, under a constraint, with the tool's own
bench; save the choice so build and bench can reuse it.

The search space is a bench matrix (runtime x precision x batch x concurrent requests x
threads) measured in throughput mode; every candidate keeps its fidelity against FP32 (computed
as in bench). The constraint filters (p99 bound, top-1 agreement floor); the Pareto front of
throughput against p99 is reported; the chosen configuration is the highest-throughput one that
meets the constraint.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from alexnet_deploy import constants as C
from alexnet_deploy.bench.report import pareto_front
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

    def why_not(self, row: dict) -> str | None:
        if row["status"] != "ok":
            return row.get("reason") or "failed"
        if self.max_p99_ms is not None and row["p99_ms"] > self.max_p99_ms:
            return f"p99 {row['p99_ms']:.1f} ms > {self.max_p99_ms:g} ms"
        if row.get("top1_agreement", 0) < self.min_top1_agreement:
            return f"top-1 agreement {row['top1_agreement']:.3f} < {self.min_top1_agreement:.3f}"
        return None


@dataclass
class TuneResult:
    rows: list[dict]
    front: list[dict]
    chosen: dict
    rejected: dict[str, str]


def choose(rows: list[dict], constraint: Constraint) -> TuneResult:
    """Pareto front (all successful rows) and the fastest row meeting the constraint."""
    ok = [r for r in rows if r["status"] == "ok"]
    points = [(r["images_per_s"], r["p99_ms"]) for r in ok]
    front = sorted((ok[i] for i in pareto_front(points)), key=lambda r: r["p99_ms"])
    rejected, feasible = {}, []
    for row in rows:
        reason = constraint.why_not(row)
        label = Case.from_row(row).label
        if reason:
            rejected[label] = reason
        else:
            feasible.append(row)
    if not feasible:
        raise AlexnetDeployError(
            f"no configuration meets the constraint ({len(rows)} measured)",
            hint="relax --max-p99-ms or --max-top1-drop, or widen the search (--batch, --streams)",
        )
    chosen = max(feasible, key=lambda r: r["images_per_s"])
    return TuneResult(rows, front, chosen, rejected)


# what a point of the Pareto front shows, in the terminal and in the saved choice
FRONT_COLUMNS = (
    "backend",
    "precision",
    "batch",
    "streams",
    "threads",
    "quantizer",
    "images_per_s",
    "p50_ms",
    "p99_ms",
    "top1_agreement",
)


def front_rows(result: TuneResult) -> list[dict]:
    return [{k: r.get(k) for k in FRONT_COLUMNS} for r in result.front]


def tuned_record(
    result: TuneResult, constraint: Constraint, model: Path, report_path: Path | None
) -> dict:
    c = result.chosen
    return {
        "schema": TUNED_SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": str(model),
        "constraint": asdict(constraint),
        "choice": {
            "backend": c["backend"],
            "precision": c["precision"],
            "batch": c["batch"],
            "streams": c.get("streams"),
            "threads": c.get("threads"),
            "mode": c["mode"],
            "quantizer": c.get("quantizer", "qdq"),
        },
        "measured": {
            k: c.get(k)
            for k in ("images_per_s", "p50_ms", "p99_ms", "top1_agreement", "centered_cosine")
        },
        "front": front_rows(result),
        "report": None if report_path is None else str(report_path),
    }


def default_quantizers() -> tuple[str, ...]:
    """The INT8 routes a search covers: NNCF's too where it is installed."""
    from alexnet_deploy.calib.nncf_quant import nncf_missing

    return ("qdq",) if nncf_missing() else ("qdq", "nncf")


def tuned_quantizers(choice: dict) -> tuple[str, ...]:
    """Bench the tuned engine's route, and NNCF's beside it where installed (the peer a user of
    OpenVINO's documentation would build)."""
    return tuple(dict.fromkeys((choice.get("quantizer", "qdq"), *default_quantizers())))


def tuned_comparison(choice: dict, rows: list[dict]) -> dict:
    """The tuned engine's row against the best row of a runtime used directly, same run."""
    from alexnet_deploy.engines.registry import DIRECT_BACKENDS

    ok = [r for r in rows if r["status"] == "ok"]
    mine = [
        r
        for r in ok
        if r["backend"] == choice["backend"]
        and r.get("quantizer", "qdq") == choice.get("quantizer", "qdq")
        and r["batch"] == choice.get("batch", r["batch"])
    ]
    peers = [r for r in ok if r["backend"] in DIRECT_BACKENDS]
    if not mine or not peers:
        return {}
    tuned, best = mine[0], max(peers, key=lambda r: r["images_per_s"])
    pooled = tuned["images_per_s"] / best["images_per_s"]
    mine_rounds, peer_rounds = tuned.get("round_images_per_s"), best.get("round_images_per_s")
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
            "tuned_images_per_s": tuned["images_per_s"],
            "peer": {
                k: best.get(k) for k in ("backend", "precision", "quantizer", "batch", "streams")
            },
            "peer_images_per_s": best["images_per_s"],
            "target": C.TUNED_OVER_PEER_TARGET,
            "met": ratio >= C.TUNED_OVER_PEER_TARGET,
            "text": f"tuned {choice['backend']} ({tuned['images_per_s']:.1f} images/s) vs the best peer row, "
            f"{best['backend']} {best['precision']} ({best.get('quantizer', 'qdq')}) "
            f"({best['images_per_s']:.1f} images/s): {ratio:.2f}x, {how} (pooled {pooled:.2f}x; "
            f"target >= {C.TUNED_OVER_PEER_TARGET}x)",
        }
    }


# bench flags a tuned configuration decides (--batch may add batches beside the tuned one)
_TUNED_DECIDES = ("backends", "precisions", "modes", "threads", "streams", "quantizers")


def tuned_matrix_flags(choice: dict, flags: dict) -> dict:
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
    extra = [b.strip() for b in (flags.get("batches") or "").split(",") if b.strip()]
    return {
        **flags,
        "backends": (choice["backend"], *DIRECT_BACKENDS),
        "precisions": (choice["precision"],),
        "batches": ",".join(dict.fromkeys([str(choice["batch"]), *extra])),
        "modes": (choice["mode"],),
        "threads": (choice["threads"],),
        "streams": (choice["streams"],),
        "quantizers": tuned_quantizers(choice),
    }


def tuned_build_settings(choice: dict, max_batch: int) -> dict:
    """``build --tuned``: the engine settings the tuner chose (its batch fits the profile)."""
    return {
        "backend": choice["backend"],
        "precision": choice["precision"],
        "threads": choice["threads"],
        "streams": choice["streams"],
        "hint": "throughput",
        "quantizer": choice.get("quantizer", "qdq"),
        "max_batch": max(max_batch, choice["batch"]),
    }


def tune_config(
    *,
    backends: tuple[str, ...],
    precisions: tuple[str, ...],
    batch: str,
    streams: str,
    threads: str | None,
    quantizers: tuple[str, ...],
    min_seconds: float,
    max_seconds: float,
    repeat: int,
):
    """The search space of ``tune``: runtimes (ORT and OpenVINO unless given) x INT8 (unless
    given) x batch x streams x threads, throughput mode, every INT8 route installed."""
    from alexnet_deploy.bench.config import BenchConfig, Matrix, MeasureRules, parse_int_list

    matrix = Matrix(
        backends=backends or ("ort", "openvino"),
        precisions=precisions or ("int8",),
        batches=parse_int_list(batch, "batch"),
        modes=("throughput",),
        streams=parse_int_list(streams, "streams"),
        threads=parse_int_list(threads, "threads") if threads else (None,),
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
