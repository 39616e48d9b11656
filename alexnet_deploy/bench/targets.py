"""What a bench case runs on, behind one interface: an engine this tool builds (every Backend of
engines/registry.py), a runtime used directly with its own defaults (the peers), or a model
served by Triton Inference Server. ``target_for`` is the only place that tells them apart by
name; bench/run.py measures whatever it is given.

A target is prepared once per case (build or reuse the engine, find the artifact) and then, each
round, yields ``case.concurrency`` infer callables that may run at the same time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from alexnet_deploy import constants as C
from alexnet_deploy.bench.records import EngineInfo
from alexnet_deploy.cases import Case
from alexnet_deploy.engines.registry import BACKEND_NAMES, DIRECT_BACKENDS, SERVED


@dataclass
class Prepared:
    max_batch: int
    artifact: Path | None = None  # the ONNX file run (None: the server holds the model)
    # what ran it, for the row (and, once its workers ran, what it computed in)
    info: EngineInfo = field(default_factory=EngineInfo)
    engine: object = None
    # the one batch it takes (an engine compiled for a static batch, a model Triton serves
    # unbatched); None: any batch up to max_batch
    static_batch: int | None = None


def engine_options(case: Case):
    """The build options of a case's engine (bench and the paired gate build the same)."""
    from alexnet_deploy.engines.options import BuildOptions

    return BuildOptions(
        precision=case.precision,
        threads=case.threads,
        streams=case.streams,
        hint="latency" if case.mode == "latency" else "throughput",
        max_batch=max(C.DEFAULT_MAX_BATCH, case.batch),
        quantizer=case.quantizer,
        static_batch=case.batch if case.static else None,  # compiled for its own batch alone
        float_precision=case.float_precision,
    )


class EngineTarget:
    """An engine built (or reused) by ``build_engine`` with the case's settings."""

    def prepare(self, case: Case, model: Path, work_dir: Path) -> Prepared:
        from alexnet_deploy.engines.build import build_engine, engine_source

        options = engine_options(case)
        engine, reused = build_engine(model, case.backend, options, work_dir)
        return Prepared(
            engine.sidecar.options["max_batch"],  # 1 where the graph fixes the batch at 1
            engine_source(model, case.backend, options),  # not the sidecar's: may have moved
            EngineInfo(str(engine.path), reused, engine.sidecar.build_seconds),
            engine,
            engine.sidecar.options.get("static_batch"),
        )

    @contextlib.contextmanager
    def workers(self, case: Case, prepared: Prepared) -> Iterator[list]:
        from alexnet_deploy.engines.registry import get_backend

        with get_backend(case.backend).runner(prepared.engine) as runner:
            if prepared.info.computed_in is None:  # read back once, in the first round
                prepared.info = prepared.info.with_computed(runner.computed())
            yield runner.workers(case.concurrency)


class DirectTarget:
    """ONNX Runtime or OpenVINO on the artifact with their defaults: no code of ours between."""

    def prepare(self, case: Case, model: Path, work_dir: Path) -> Prepared:
        from alexnet_deploy.engines.build import resolve_artifact
        from alexnet_deploy.onnx_model import ENGINE_BATCH, read_artifact

        runtime = "ort" if case.backend == "ort-direct" else "openvino"
        artifact = resolve_artifact(model, case.precision, runtime, case.quantizer)
        max_batch = read_artifact(artifact).batch_for(C.DEFAULT_MAX_BATCH, ENGINE_BATCH)
        return Prepared(max_batch, artifact, EngineInfo("(runtime used directly)"))

    @contextlib.contextmanager
    def workers(self, case: Case, prepared: Prepared) -> Iterator[list]:
        from alexnet_deploy.bench.direct import direct_infer

        first = prepared.info.computed_in is None  # read back once, in the first round
        with direct_infer(case.backend, prepared.artifact, case.concurrency, first) as (
            infer,
            computed,
        ):
            prepared.info = prepared.info.with_computed(computed)
            yield infer


class ServedTarget:
    """A model on a Triton server, driven over HTTP or gRPC; the server decides precision."""

    def __init__(self, served) -> None:
        self.served = served

    def prepare(self, case: Case, model: Path, work_dir: Path) -> Prepared:
        s = self.served
        return Prepared(
            s.static_batch or s.max_batch_size or C.DEFAULT_MAX_BATCH,
            None,
            EngineInfo(f"triton {s.endpoint.protocol}://{s.endpoint.address} model {s.name}"),
            static_batch=s.static_batch,
        )

    @contextlib.contextmanager
    def workers(self, case: Case, prepared: Prepared) -> Iterator[list]:
        from alexnet_deploy.serve.triton_client import infer_callable

        yield [infer_callable(self.served) for _ in range(case.concurrency)]


def target_for(backend: str, served=None):
    """The target that runs ``backend`` (a name of engines/registry.py)."""
    if backend == SERVED:
        return ServedTarget(served)
    if backend in DIRECT_BACKENDS:
        return DirectTarget()
    if backend in BACKEND_NAMES:
        return EngineTarget()
    raise ValueError(f"unknown bench backend {backend!r}")


def matrix_backends(requested: tuple[str, ...], direct: bool, served) -> list[str]:
    """The backends a run covers: the served model alone; else those asked for; else every
    engine available here, plus the direct runtimes installed (unless ``direct`` is off)."""
    from alexnet_deploy.bench.direct import available as direct_available
    from alexnet_deploy.engines.registry import get_backend

    if served is not None:
        return [SERVED]
    if requested:
        return list(requested)
    found = [b for b in BACKEND_NAMES if get_backend(b).capability().available]
    if direct:
        found += [b for b in DIRECT_BACKENDS if direct_available(b)]
    return found


def served_cases(cases: list[Case]) -> list[Case]:
    """The server decides the precision: one case per batch, mode, threads and streams."""
    return list(
        dict.fromkeys(
            Case(SERVED, "served", c.batch, c.mode, c.threads, c.streams, "served") for c in cases
        )
    )
