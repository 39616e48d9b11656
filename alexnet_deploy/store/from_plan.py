"""A plan's timings as a stored run (``plan --store``): each timed plan and reference (all-FP32,
all-INT8, NNCF's) on each backend and batch it was timed at is one configuration, labelled
``"ort plan b1 latency: all-INT8"`` (the speed case's label, then the plan's name), with its
images/s and its fidelity; the whole plan entry of plan.json is its record. A plan is timed by
bench's latency loop without keeping its samples, so its results carry no latency figures.

The run is this machine's (the plan was timed here, now); its uuid is plan.json's content, so the
same plan result is never stored twice.
"""

from __future__ import annotations

import time
from pathlib import Path

from alexnet_deploy.store.records import StoredResult, StoredRun
from alexnet_deploy.store.rows import utc_iso


def run_from_plan(outcome, plan_json: Path) -> tuple[StoredRun, list[StoredResult]]:
    """``outcome`` (precision.planner.PlanOutcome) and the plan.json written for it."""
    from alexnet_deploy.bench.fingerprint import comparable_key, environment
    from alexnet_deploy.fileio import sha256_file
    from alexnet_deploy.precision.plan_report import as_json
    from alexnet_deploy.precision.speed import speed_case
    from alexnet_deploy.store.from_report import checkout_branch, cpu_class_of, run_uuid

    env = environment()
    request = outcome.request
    cases = {
        speed_case(b, n).label: speed_case(b, n) for b in request.backends for n in request.batches
    }
    written = as_json(outcome)
    results = []
    for entry in [*written["plans"], *written["references"]]:
        fidelity = entry["fidelity"] or {}
        for label, rate in (entry["images_per_s"] or {}).items():
            results.append(
                StoredResult(
                    label=f"{label}: {entry['plan']}",
                    case={**cases[label].key(), "plan": entry["plan"]},
                    ok=True,
                    images_per_s=rate,
                    p50_ms=None,
                    p99_ms=None,
                    p50_ci_ms=None,
                    p99_ci_ms=None,
                    top1_agreement=fidelity.get("top1_agreement"),
                    centered_cosine=fidelity.get("centered_cosine"),
                    record=entry,
                )
            )
    run = StoredRun(
        uuid=run_uuid(Path(plan_json).read_bytes()),
        created=utc_iso(time.strftime("%Y-%m-%dT%H:%M:%S%z")),
        kind="plan",
        commit=env.get("git_commit"),
        branch=checkout_branch(env.get("git_commit")),
        machine=comparable_key(env),
        cpu_class=cpu_class_of(env),
        cpu_model=env.get("cpu") or "unknown",
        runtimes=dict(env.get("runtimes") or {}),
        model_name=outcome.model_name,
        model_sha256=sha256_file(outcome.model),
        command=None,
        source=str(Path(plan_json).parent.resolve()),
    )
    return run, results
