"""What tune says of its search (bench/tune.py chooses, bench/tune_search.py measures): the
Pareto front as a table with bench's human headers, the choice in words (its engine's real
batch range, its requests and threads, the confirm stage's median and whether another
configuration is within noise of it), each runtime used directly beside it, and the saved
choice (tuned.json)."""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

from alexnet_deploy.bench.records import BenchRow
from alexnet_deploy.bench.report import TERMINAL_COLUMNS
from alexnet_deploy.bench.tune import TUNED_SCHEMA, Constraint, TuneResult, choose
from alexnet_deploy.bench.tune_confirm import median_rate, rates
from alexnet_deploy.cases import Case
from alexnet_deploy.errors import AlexnetDeployError

# the front's columns in the terminal, headed as bench's table heads them (bench/report.py)
_FRONT_COLUMNS = (
    "backend", "precision", "quantizer", "batch", "shape", "float_precision", "streams",
    "threads", "images_per_s", "p50_ms", "p99_ms", "top1_agreement", "instability",
)  # fmt: skip
_TUNE_HEADERS = {
    "shape": "shape",
    "streams": "requests",
    "threads": "threads",
    "top1_agreement": "top-1 agree",
}
FRONT_HEADERS = {c: _TUNE_HEADERS.get(c) or TERMINAL_COLUMNS[c] for c in _FRONT_COLUMNS}


def front_point(row: BenchRow) -> dict:
    """What a point of the Pareto front shows, in the terminal and in the saved choice."""
    c = row.case
    return {
        "backend": c.backend,
        "precision": c.precision,
        "batch": c.batch,
        "static": c.static,
        "streams": c.streams,
        "threads": c.threads,
        "quantizer": c.quantizer,
        "float_precision": c.float_precision,
        "images_per_s": row.images_per_s,
        "p50_ms": row.p50_ms,
        "p99_ms": row.p99_ms,
        "top1_agreement": row.top1_agreement,
        "unstable": row.unstable,  # the row's own measurements disagree: a choice not to trust
        "instability": row.instability,
    }


def front_rows(result: TuneResult) -> list[dict]:
    return [front_point(r) for r in result.front]


def threads_text(case: Case) -> str:
    return f"{case.threads} threads" if case.threads else "the runtime's threads"


def front_frame(result: TuneResult, shape):
    """The front for the terminal (``shape``: a case's compiled shape in words, the search's
    ``shape``): human headers, the INT8 route only on INT8 rows, a column no row fills left
    out."""
    import polars as pl

    points = []
    for row in result.front:
        point, c = front_point(row), row.case
        point |= {
            "shape": shape(c),
            "threads": str(c.threads) if c.threads else "runtime's",
            "quantizer": c.quantizer if c.precision == "int8" else "",
            "float_precision": c.float_precision or "",
        }
        points.append({FRONT_HEADERS[k]: point[k] for k in _FRONT_COLUMNS})
    frame = pl.DataFrame(points) if points else pl.DataFrame({"backend": []})
    empty = [c for c in frame.columns if frame[c].dtype == pl.String and (frame[c] == "").all()]
    return frame.drop(empty)


def tuned_record(
    result: TuneResult,
    constraint: Constraint,
    model: dict,
    report_path: Path | None,
    search: dict | None = None,
    direct: dict | None = None,
) -> dict:
    """The saved choice (tuned.json): its configuration (every field of its ``Case``, read back
    by ``tuned_choice``), what was measured for it (the confirm stage's rounds and median where
    it ran), the configurations within noise of it, the front, the model by name (``model``:
    the report's, with its ``name`` and ``path``), the search (its stages, what the time budget
    skipped, the confirm stage's finalists), the runtimes used directly beside it
    (direct_tput.versus_direct) and the report."""
    row, c, confirmation = result.chosen, result.chosen.case, result.confirmation
    fidelity = row.fidelity
    if search is not None and confirmation is not None:
        search = {**search, "confirm": confirmation.record()}
    return {
        "schema": TUNED_SCHEMA,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "model": model["name"],
        "model_path": model["path"],
        "constraint": asdict(constraint),
        "choice": c.columns(),
        "measured": {
            "images_per_s": row.images_per_s,
            "median_images_per_s": median_rate(row),
            "round_images_per_s": list(rates(row)),
            "p50_ms": row.p50_ms,
            "p99_ms": row.p99_ms,
            "top1_agreement": row.top1_agreement,
            "centered_cosine": None if fidelity is None else fidelity.centered_cosine,
            "unstable": row.unstable,
            "instability": row.instability,
        },
        # other configurations whose confirmed median is within the measured noise of the
        # choice: a second run may choose one of them, and be as right
        "within_noise_of": [] if confirmation is None else confirmation.within_noise_of(),
        "front": front_rows(result),
        "search": search,
        "direct": direct,
        "report": None if report_path is None else str(report_path),
    }


def tune_comparisons(search, rows: list[BenchRow]) -> dict:
    """The report's headline for a tune run (``search``: its StagedSearch, after the run): the
    choice against each runtime used directly (direct_tput.versus_direct: where the confirm
    stage ran, its rows of both, the same interleaved rounds), where a choice is made; else
    nothing (the command then says why no configuration was chosen)."""
    from alexnet_deploy.bench.direct_tput import versus_direct

    try:
        tuned = choose(rows, search.constraint, confirmed=search.confirmed)
    except AlexnetDeployError:
        return {}
    peak = None if search.ceilings is None else search.ceilings.int8_gops
    peers = None if tuned.confirmation is None else tuned.confirmation.peers
    found = versus_direct(tuned.chosen, rows, peak, peers)
    return {"tune_vs_direct": found} if found else {}


def choice_lines(tuned: TuneResult, model_name: str, path: Path, search, direct: dict) -> list[str]:
    """What the terminal says of the choice: its configuration (the model by name), the confirm
    stage's finalists and any within noise of the choice, each runtime used directly beside it
    and the ratio, the % of the INT8 compute peak, and what the time budget skipped."""
    from alexnet_deploy.bench.pipeline import unstable_note

    chosen, confirmation = tuned.chosen, tuned.confirmation
    c = chosen.case
    route = f" ({c.quantizer})" if c.precision == "int8" else ""
    floats = f", float parts {c.float_precision}" if c.float_precision else ""
    n, rate = c.concurrency, f"{chosen.images_per_s:.1f} images/s"
    requests = f"{n} request{'s' * (n != 1)}"
    if confirmation is not None:
        rate = f"median {median_rate(chosen):.1f} images/s over {confirmation.rounds} rounds"
    lines = [
        f"chosen for {model_name}: {c.backend} {c.precision}{route} batch {c.batch} "
        f"{search.shape(c)}, {requests}, {threads_text(c)}{floats}: "
        f"{rate}, p99 {chosen.p99_ms:.1f} ms; saved {path}" + unstable_note(chosen)
    ]
    if confirmation is not None:
        lines.append(
            f"confirm stage: the finalists measured again, interleaved over "
            f"{confirmation.rounds} rounds (the choice: the best median):"
        )
        lines += confirmation.lines()
        lines += [t for t in (confirmation.noise_text(),) if t]
    lines += [entry["text"] for entry in direct.get("runtimes", {}).values()]
    if direct:
        verdict = "met" if direct["met"] else "not met"
        lines.append(f"{direct['peak_text']}; target {verdict}")
    record = search.record()
    budget = record["time_budget_s"]
    within = f"within the time budget ({budget:g} s)" if budget else "(no time budget)"
    lines.append(record["skipped_text"] or f"every candidate ran {within}")
    lines += [t for t in (record["unconfirmed_text"],) if t]
    return lines
