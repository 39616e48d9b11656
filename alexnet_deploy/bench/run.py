"""The matrix: build (or reuse) each engine, measure each configuration, pair each row with
its fidelity against FP32. A row that fails is marked failed with its reason and the rest goes
on; Ctrl-C stops the matrix with every finished row kept."""

from __future__ import annotations

import itertools
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from alexnet_deploy import constants as C
from alexnet_deploy.bench.config import BenchConfig
from alexnet_deploy.bench.direct import DIRECT_BACKENDS, direct_infer
from alexnet_deploy.bench.direct import available as direct_available
from alexnet_deploy.bench.measure import (
    Measurement,
    measure_latency,
    measure_server,
    measure_throughput,
)
from alexnet_deploy.bench.roofline import Ceilings, macs_per_image, roofline_columns, weight_bytes
from alexnet_deploy.bench.stats import latency_stats
from alexnet_deploy.calib.fidelity import compare_logits
from alexnet_deploy.errors import AlexnetDeployError


@dataclass(frozen=True)
class Case:
    backend: str
    precision: str
    batch: int
    mode: str
    threads: int | None
    streams: int | None

    @property
    def concurrency(self) -> int:
        return 1 if self.mode == "latency" else (self.streams or 2)

    def key(self) -> dict:
        return {
            "backend": self.backend,
            "precision": self.precision,
            "batch": self.batch,
            "mode": self.mode,
            "threads": self.threads,
            "streams": self.streams,
        }


@dataclass
class BenchResult:
    rows: list[dict] = field(default_factory=list)
    samples: list[dict] = field(default_factory=list)  # columns of the raw-sample table
    interrupted: bool = False

    @property
    def failed(self) -> list[dict]:
        return [r for r in self.rows if r["status"] == "failed"]


def expand(config: BenchConfig, backends: list[str]) -> list[Case]:
    m = config.matrix
    return [
        Case(*values)
        for values in itertools.product(
            backends, m.precisions, m.batches, m.modes, m.threads, m.streams
        )
    ]


def supported(case: Case) -> str | None:
    """Why a combination is not run (None when it is)."""
    if case.backend == "torch" and case.precision != "fp32":
        return "torch runs the FP32 reference only"
    return None


class FidelityProbe:
    """Fixed real inputs and their FP32 logits, computed once per run."""

    def __init__(self, images: np.ndarray, reference: np.ndarray, source: str) -> None:
        self.images, self.reference, self.source = images, reference, source

    def of(self, infer: Callable[[np.ndarray], np.ndarray], max_batch: int) -> dict:
        chunks = [
            infer(self.images[i : i + max_batch]) for i in range(0, len(self.images), max_batch)
        ]
        f = compare_logits(self.reference, np.concatenate(chunks))
        return {
            "top1_agreement": f.top1_agreement,
            "centered_cosine": f.centered_cosine,
            "fidelity_samples": f.samples,
            "fidelity_source": self.source,
        }


def _measure(
    case: Case, workers: list, batch: np.ndarray, config: BenchConfig, seed: int
) -> Measurement:
    if case.mode == "latency":
        return measure_latency(workers[0], batch, config.rules)
    if case.mode == "throughput":
        return measure_throughput(workers, batch, config.rules)
    return measure_server(workers, batch, config.rules, config.matrix.server_latency_bound_ms, seed)


def run_matrix(
    model: Path,
    config: BenchConfig,
    work_dir: Path,
    probe: FidelityProbe,
    ceilings: Ceilings | None,
    *,
    seed: int = C.DEFAULT_SEED,
    direct: bool = True,
    on_row: Callable[[dict], None] = lambda r: None,
    progress=None,
) -> BenchResult:
    from alexnet_deploy.engines.build import build_engine, resolve_artifact
    from alexnet_deploy.engines.options import BuildOptions
    from alexnet_deploy.engines.registry import BACKEND_NAMES, get_backend

    backends = list(config.matrix.backends) or [
        b for b in BACKEND_NAMES if get_backend(b).capability().available
    ]
    if direct and not config.matrix.backends:
        backends += [b for b in DIRECT_BACKENDS if direct_available(b)]
    cases = [c for c in expand(config, backends) if supported(c) is None]
    result = BenchResult()
    macs = macs_per_image(model)
    task = progress.add_task("bench", total=len(cases) * config.rules.repeat) if progress else None
    try:
        for case in cases:
            if progress:
                progress.update(
                    task, description=f"{case.backend} {case.precision} b{case.batch} {case.mode}"
                )
            row = {**case.key(), "status": "ok", "reason": ""}
            try:
                row.update(
                    _run_case(
                        case,
                        model,
                        config,
                        work_dir,
                        probe,
                        ceilings,
                        macs,
                        seed,
                        result,
                        build_engine,
                        resolve_artifact,
                        BuildOptions,
                        get_backend,
                        progress,
                        task,
                    )
                )
            except KeyboardInterrupt:
                raise
            except AlexnetDeployError as err:
                row.update(status="failed", reason=err.message)
            except Exception as err:  # a backend crashing mid-matrix must not stop the others
                row.update(
                    status="failed",
                    reason=f"{type(err).__name__}: {err}",
                    traceback=traceback.format_exc(limit=3),
                )
            result.rows.append(row)
            on_row(row)
    except KeyboardInterrupt:
        result.interrupted = True
    return result


def _run_case(
    case,
    model,
    config,
    work_dir,
    probe,
    ceilings,
    macs,
    seed,
    result,
    build_engine,
    resolve_artifact,
    BuildOptions,
    get_backend,
    progress,
    task,
) -> dict:
    rng = np.random.default_rng(seed)
    info: dict = {}
    if case.backend in DIRECT_BACKENDS:
        artifact = resolve_artifact(
            model, case.precision, "ort" if case.backend == "ort-direct" else "openvino"
        )
        context = direct_infer(case.backend, artifact, case.concurrency)
        max_batch = C.DEFAULT_MAX_BATCH
        info["engine"] = "(runtime used directly)"
    else:
        hint = "latency" if case.mode == "latency" else "throughput"
        options = BuildOptions(
            precision=case.precision,
            threads=case.threads,
            streams=case.streams,
            hint=hint,
            max_batch=max(C.DEFAULT_MAX_BATCH, case.batch),
        )
        engine, reused = build_engine(model, case.backend, options, work_dir)
        artifact = Path(engine.sidecar.artifact)
        backend = get_backend(case.backend)
        runner = backend.runner(engine)
        max_batch = options.max_batch

        class _Ctx:
            def __enter__(self_inner):
                runner.__enter__()
                return runner.workers(case.concurrency)

            def __exit__(self_inner, *exc):
                runner.__exit__(*exc)

        context = _Ctx()
        info.update(
            engine=str(engine.path),
            engine_reused=reused,
            build_seconds=engine.sidecar.build_seconds,
        )
    from alexnet_deploy.fileio import sha256_file

    info["artifact_sha256"] = sha256_file(artifact)
    wbytes = weight_bytes(artifact)
    with context as workers:
        info.update(probe.of(workers[0], max_batch))  # fidelity: outside the timed region
        shape = probe.images.shape[1:]
        batch = rng.standard_normal((case.batch, *shape)).astype(np.float32)
        measurements = []
        for repeat in range(config.rules.repeat):
            m = _measure(case, workers, batch, config, seed + repeat)
            measurements.append(m)
            for i, value in enumerate(m.samples_ns):
                result.samples.append(
                    {**case.key(), "repeat": repeat, "index": i, "latency_ns": int(value)}
                )
            if progress:
                progress.advance(task)
    pooled = np.concatenate([m.samples_ns for m in measurements])
    stats = latency_stats(pooled, config.rules.percentiles)
    wall = sum(m.wall_seconds for m in measurements)
    requests = sum(m.requests for m in measurements)
    inferences = requests / wall
    row = {
        **stats.as_columns(),
        "inferences_per_s": inferences,
        "images_per_s": inferences * case.batch,
        "wall_seconds": wall,
        "stop_reason": ",".join(sorted({m.stop_reason for m in measurements})),
        "macs_per_image": macs,
        "weight_bytes": wbytes,
        **info,
    }
    if len(measurements) > 1:
        p50s = [float(np.median(m.samples_ns)) for m in measurements]
        spread = (max(p50s) - min(p50s)) / float(np.median(p50s))
        row.update(repeat_p50_spread=spread, noisy=spread > C.BENCH_NOISY_SPREAD)
    if case.mode == "server":
        last = measurements[-1].extra
        row.update(
            server_rate=last["achieved_rate"],
            server_meets_bound=last["meets_bound"],
            server_bound_ms=last["latency_bound_ms"],
        )
    if ceilings is not None:
        row.update(
            roofline_columns(
                row["images_per_s"], inferences, macs, wbytes, case.batch, case.precision, ceilings
            )
        )
    row["measured_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return row
