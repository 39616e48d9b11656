"""Paired mode: the baseline's engine and the current one measured in the same process,
alternating in blocks (A B, B A, ...), judged on the per-pair ratio of block medians with a
bootstrap over pairs: the setting the gate's evaluation measured (docs/gate-evaluation.md),
where each pair sees the same machine and the drift of a shared host cancels.

What it needs from a baseline report: its configurations (``Case`` keys) and the FP32 model it
measured (its path; ``--baseline-model`` gives another). The current side is a model given now.
The artifacts both models need come from the orchestration layer (``artifacts``: the gate
never exports or calibrates on its own); their engines are built or reused here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from alexnet_deploy import constants as C
from alexnet_deploy.cases import Case
from alexnet_deploy.engines.registry import BACKEND_NAMES
from alexnet_deploy.gate.compare import (
    NOT_COMPARABLE,
    GateResult,
    Verdict,
    verdict_of,
)
from alexnet_deploy.paired import interleaved_ratios, judge_ratios


def baseline_model(report_path: Path, given: Path | None, work_dir: Path) -> Path | None:
    """The FP32 model a baseline measured, found by its content (the sha256 the report
    recorded): at its recorded path, else among the work directory's exports. ``given``
    (--baseline-model) is taken as it is, when it exists."""
    import json

    from alexnet_deploy.artifacts import WorkDir
    from alexnet_deploy.fileio import sha256_file

    if given is not None:
        return Path(given) if Path(given).is_file() else None
    recorded = json.loads(Path(report_path).read_text())["model"]
    sha = recorded.get("sha256")
    for candidate in [Path(recorded["path"]), *WorkDir(work_dir).exports()]:
        if candidate.is_file() and (sha is None or sha256_file(candidate) == sha):
            return candidate
    return None


def paired_verdict(case: Case, infer_a, infer_b, batch, threshold: float, seed: int) -> Verdict:
    """One configuration: warm both, then ``C.AA_PAIRS`` interleaved pairs of blocks."""
    for _ in range(5):
        infer_a(batch)
        infer_b(batch)
    ratios = interleaved_ratios(infer_a, infer_b, batch, C.AA_PAIRS, C.AA_BLOCK_CALLS)
    outcome = judge_ratios(ratios, threshold, seed)
    verdict = verdict_of(outcome.change, threshold, outcome.ci_low > 0, outcome.ci_high < 0)
    return Verdict(
        case.label,
        "p50 (paired)",
        verdict,
        change=outcome.change,
        ci_low=1 + outcome.ci_low,
        ci_high=1 + outcome.ci_high,
        note=f"median of {len(ratios)} interleaved pair ratios (current / baseline)",
        detectable=max(threshold, (outcome.ci_high - outcome.ci_low) / 2),
        threshold=threshold,
    )


def compare_paired(
    cases: list[Case],
    engines_for,
    threshold: float,
    *,
    seed: int = C.DEFAULT_SEED,
    progress=lambda m: None,
) -> GateResult:
    """``engines_for(case)`` -> (baseline engine, current engine); each case judged paired."""
    from alexnet_deploy.engines.registry import get_backend

    result = GateResult([], mode="paired")
    for index, case in enumerate(sorted(cases, key=Case.sort_key)):
        if case.backend not in BACKEND_NAMES:
            result.verdicts.append(
                Verdict(case.label, "p50 (paired)", NOT_COMPARABLE, note="paired mode runs engines")
            )
            continue
        progress(f"paired: {case.label}")
        base, current = engines_for(case)
        shape = (case.batch, *base.sidecar.image_shape)
        batch = np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)
        backend = get_backend(case.backend)
        with backend.runner(base) as a, backend.runner(current) as b:
            result.verdicts.append(
                paired_verdict(case, a.infer, b.infer, batch, threshold, seed + index)
            )
    if not result.comparable:
        result.notes.append("no configuration could be compared")
    return result


def paired_gate(
    baseline, base_model: Path, current_model: Path | None, work_dir: Path, threshold: float,
    artifacts: Callable[[Path | None, set[str], set[str]], Path], *, progress=lambda m: None,
) -> GateResult:  # fmt: skip
    """For each configuration of the ``baseline`` report, the engine of its model and the
    engine of ``current_model`` (None: the main job's export; ``artifacts`` makes or reuses
    what each needs), measured interleaved in one process; a GateResult in mode "paired"."""
    from alexnet_deploy.bench.targets import engine_options
    from alexnet_deploy.engines.build import build_engine
    from alexnet_deploy.locking import directory_lock

    cases = list(baseline.rows)
    precisions, quantizers = {c.precision for c in cases}, {c.quantizer for c in cases}
    with directory_lock(work_dir, "gate"):
        models = [artifacts(m, precisions, quantizers) for m in (base_model, current_model)]

        def engines_for(case):
            options = engine_options(case)
            return tuple(build_engine(m, case.backend, options, work_dir)[0] for m in models)

        return compare_paired(cases, engines_for, threshold, progress=progress)


def paired_or_fallback(
    baseline, given_model: Path | None, current_model: Path | None, work_dir: Path,
    threshold: float, artifacts, *, required: bool, progress=lambda m: None,
) -> tuple[GateResult | None, str | None]:  # fmt: skip
    """Paired mode when the baseline's model (its recorded path, or ``given_model``:
    --baseline-model) is on this machine: ``(result, None)``. Otherwise ``(None, why)`` for the
    caller to compare the reports unpaired, or, when ``required``, a usage error."""
    from alexnet_deploy.errors import UsageError

    found = baseline_model(baseline.paths[0], given_model, work_dir)
    if found is None:
        where = given_model or (
            f"the file recorded in {baseline.paths[0]}, by path and content, or one of the same "
            f"content in {work_dir}"
        )
        why = f"paired mode needs the baseline's model ({where}), which is not on this machine"
        if required:
            raise UsageError(why, hint="pass it with --baseline-model, or a CURRENT report")
        return None, why
    result = paired_gate(
        baseline, found, current_model, work_dir, threshold, artifacts, progress=progress
    )
    return result, None
