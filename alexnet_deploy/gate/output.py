"""The gate's result out: terminal table, Markdown (and $GITHUB_STEP_SUMMARY), JSON, JUnit XML."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path
from xml.sax.saxutils import escape

from alexnet_deploy.fileio import write_json_atomic, write_text_atomic
from alexnet_deploy.gate.compare import (
    INCONCLUSIVE,
    MODES,
    NOT_COMPARABLE,
    NOT_JUDGED,
    REGRESSED,
    GateResult,
)


def result_frame(result: GateResult):
    import polars as pl

    rows = [
        {
            "config": v.config,
            "metric": v.metric,
            "verdict": v.verdict,
            "baseline": v.baseline,
            "current": v.current,
            "change_pct": None if v.change is None else 100 * v.change,
            "ci_low": v.ci_low,
            "ci_high": v.ci_high,
            "threshold_pct": None if v.threshold is None else 100 * v.threshold,
            "detectable_pct": None if v.detectable is None else 100 * v.detectable,
            "note": v.note,
        }
        for v in result.verdicts
    ]
    return pl.DataFrame(rows, infer_schema_length=None)


def markdown(result: GateResult) -> str:
    from alexnet_deploy.render import TableFormat, frame_as_text

    icon = "✅" if result.passed else "❌"
    lines = [
        f"## {icon} alexnet-deploy gate",
        "",
        result.summary(),
        "",
        f"mode: **{result.mode}**: {MODES[result.mode]}",
        "",
    ]
    lines += [f"> {note}" for note in result.notes]
    frame = result_frame(result)
    if frame.height:
        lines += ["", frame_as_text(frame, TableFormat.md)]
    if result.history is not None:
        lines += ["", result.history.as_markdown()]
    return "\n".join(lines) + "\n"


# JUnit has pass, failure and skipped: a check not made, too thin or too noisy to call is skipped
UNSETTLED_OR_UNJUDGED = (NOT_COMPARABLE, INCONCLUSIVE, NOT_JUDGED)


def junit(result: GateResult) -> str:
    cases = []
    for v in result.verdicts:
        name = escape(f"{v.config} {v.metric}", {'"': "&quot;"})
        body = ""
        if v.verdict == REGRESSED:
            body = f'<failure message="{escape(v.note or "regressed", {chr(34): "&quot;"})}">change {v.change}</failure>'
        elif v.verdict in UNSETTLED_OR_UNJUDGED:
            body = f'<skipped message="{escape(v.note, {chr(34): "&quot;"})}"/>'
        cases.append(f'  <testcase classname="alexnet-deploy.gate" name="{name}">{body}</testcase>')
    failures = len(result.regressions)
    skipped = sum(v.verdict in UNSETTLED_OR_UNJUDGED for v in result.verdicts)
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name="alexnet-deploy gate" '
        f'tests="{len(result.verdicts)}" failures="{failures}" skipped="{skipped}">\n'
        f'  <properties><property name="mode" value="{result.mode}"/></properties>\n'
        + "\n".join(cases)
        + "\n</testsuite>\n"
    )


def check_output_paths(*paths: Path | None) -> None:
    """Refuse an output that cannot be written (a directory, a read-only place) before the
    gate runs, so a verdict is never printed and then lost to a traceback."""
    from alexnet_deploy.fileio import prepare_output

    for path in paths:
        if path is not None:
            prepare_output(path, force=True, what="gate output")


def write_outputs(
    result: GateResult, json_path: Path | None, md_path: Path | None, junit_path: Path | None
) -> None:
    if json_path:
        write_json_atomic(
            json_path,
            {
                "passed": result.passed,
                "exit_code": result.exit_code,
                "summary": result.summary(),
                "notes": result.notes,
                "env_mismatch": result.env_mismatch,
                "mode": result.mode,
                "mode_means": MODES[result.mode],
                "verdicts": [asdict(v) for v in result.verdicts],
                "history": None if result.history is None else asdict(result.history),
            },
        )
    text = markdown(result)
    if md_path:
        write_text_atomic(md_path, text)
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_file:
        with open(summary_file, "a", encoding="utf-8") as handle:
            handle.write(text)
    if junit_path:
        write_text_atomic(junit_path, junit(result))
