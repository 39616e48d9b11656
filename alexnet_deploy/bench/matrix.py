"""The matrix's cases: every combination of a bench configuration, the ones that run, and the
ones left out with why (a precision, static batch or float-part precision a backend does not
run; a batch the model's graph does not take)."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

from alexnet_deploy.bench.config import BenchConfig
from alexnet_deploy.bench.records import NotMeasured
from alexnet_deploy.cases import Case
from alexnet_deploy.errors import UsageError


def expand(config: BenchConfig, backends: list[str]) -> list[Case]:
    """Every combination; the INT8 route and the float parts' precision only multiply INT8
    cases; a runtime used directly runs its own defaults (a dynamic batch, the file's float)."""
    from alexnet_deploy.engines.registry import DIRECT_BACKENDS

    m = config.matrix
    dims = (m.precisions, m.batches, m.modes, m.threads, m.streams, m.quantizers, m.statics)
    cases = [Case(*values) for values in itertools.product(backends, *dims, m.float_precisions)]
    cases = [
        c if c.precision == "int8" else replace(c, quantizer="qdq", float_precision=None)
        for c in cases
    ]
    return list(
        dict.fromkeys(
            replace(c, static=False, float_precision=None) if c.backend in DIRECT_BACKENDS else c
            for c in cases
        )
    )


def supported(case: Case) -> str | None:
    """Why a combination is not run (None when it is): a precision its engine does not run
    (torch: the FP32 reference and bf16), a static batch it cannot compile (torch), INT8 float
    parts in a precision it cannot run them in, or bf16 through a runtime used directly (it
    runs its own defaults: its fp32 row says what it computed in)."""
    from alexnet_deploy.engines.build import float_precision_refusal
    from alexnet_deploy.engines.registry import BACKEND_NAMES, DIRECT_BACKENDS, get_backend

    if case.precision == "bf16" and case.backend in DIRECT_BACKENDS:
        return f"{case.backend} runs its own defaults: its fp32 row says what it computed in"
    if case.backend in BACKEND_NAMES:
        backend = get_backend(case.backend)
        if case.precision not in backend.precisions:
            return backend.refuses.get(case.precision) or (
                f"{case.backend} runs {', '.join(backend.precisions)}"
            )
        if case.static and backend.no_static_batch:
            return f"no static batch: {backend.no_static_batch}"
        if case.float_precision:
            return float_precision_refusal(case.backend, case.float_precision)
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
    # served: the server's model decides its batch (its config's max_batch_size, or the one
    # batch its dims fix where Triton does not batch it)
    batch = {
        c: served_refusal(served, c.batch) if served is not None else info.batch_refusal(c.batch)
        for c in expanded
    }
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


def served_refusal(served, batch: int) -> str | None:
    """Why a model Triton serves unbatched at one batch cannot take ``batch`` (None: it can)."""
    if served.static_batch is None or batch == served.static_batch:
        return None
    return (
        f"the served model {served.name} takes batch {served.static_batch} only (max_batch_size "
        f"0, input [{served.static_batch}, {', '.join(map(str, served.image_shape))}])"
    )
