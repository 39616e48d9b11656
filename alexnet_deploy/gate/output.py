"""The gate's result out: terminal table, Markdown (and $GITHUB_STEP_SUMMARY), JSON, JUnit XML."""

from __future__ import annotations

import os
from dataclasses import asdict
from pathlib import Path

from alexnet_deploy.fileio import write_json_atomic, write_text_atomic
from alexnet_deploy.gate.compare import (
    INCONCLUSIVE,
    NOT_COMPARABLE,
    NOT_JUDGED,
    REGRESSED,
    GateResult,
    metric_change,
)


def change_commits(result: GateResult) -> dict[str, str | None]:
    """Configuration -> the commit where its latest step came in, for a results store's
    history (empty for the other modes: no column then)."""
    return getattr(result.history, "change_commits", {})


def result_frame(result: GateResult):
    import polars as pl

    steps = change_commits(result)
    rows = [
        {
            "config": v.config,
            "metric": v.metric,
            "verdict": v.verdict,
            "unit": v.unit or None,
            "baseline": v.baseline,
            "current": v.current,
            # the metric's own move: a throughput gain is positive, a slower p50 too
            "change_pct": None if v.change is None else 100 * metric_change(v),
            "ci_low": v.ci_low,
            "ci_high": v.ci_high,
            "threshold_pct": None if v.threshold is None else 100 * v.threshold,
            "detectable_pct": None if v.detectable is None else 100 * v.detectable,
            "note": v.note,
            **({"change_commit": steps.get(v.config)} if steps else {}),
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
        f"mode: **{result.mode}**: {result.means}",
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
    """The verdicts as one JUnit test suite (junitparser): a regression fails its test case."""
    from junitparser import Failure, Skipped, TestCase, TestSuite

    suite = TestSuite("alexnet-deploy gate")
    suite.add_property("mode", result.mode)
    for v in result.verdicts:
        case = TestCase(f"{v.config} {v.metric}", classname="alexnet-deploy.gate")
        if v.verdict == REGRESSED:
            failure = Failure(v.note or "regressed")
            failure.text = f"change {100 * metric_change(v):+.1f}%"
            case.result = [failure]
        elif v.verdict in UNSETTLED_OR_UNJUDGED:
            case.result = [Skipped(v.note)]
        if v.unstable:  # the verdict rests on a row whose own measurements disagree
            case.system_out = f"unstable: {v.unstable}"
        suite.add_testcase(case)
    suite.update_statistics()
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + suite.tostring().decode() + "\n"


GATE_SCHEMA = "alexnet-deploy/gate/1"


def report_files(path: Path | None) -> list[Path]:
    """The files a report argument stands for: each bench-summary.json it holds (a history's
    too) with every other file of its report and the noise record beside it; a ratio baseline
    is its own file."""
    from alexnet_deploy.bench.report import REPORT_FILES
    from alexnet_deploy.gate.reports import SAMPLES, SUMMARY
    from alexnet_deploy.gate.spread import NOISE_FILE

    if path is None:
        return []
    if not path.is_dir():
        summaries = [path]
    else:  # as load_report reads it: the report in it, else the reports of a history
        summaries = [path / SUMMARY] if (path / SUMMARY).is_file() else path.glob(f"*/{SUMMARY}")
    # every file of the report (the gate reads it: it never writes over any of them)
    others = (SAMPLES, NOISE_FILE, *REPORT_FILES.values())
    return [f.with_name(name) for f in summaries for name in (f.name, *others)]


def check_output_paths(outputs: dict, reports: dict[str, Path | None], work_dir: Path) -> None:
    """Refuse, before the gate runs, an output that cannot be written (a directory, a
    read-only place) or that would destroy what the gate reads (a report's files) or the
    directories around it (outputs.py), so a verdict is never printed and then lost, and no
    report is overwritten by the verdict on it."""
    from alexnet_deploy.outputs import check_outputs

    inputs = {f"{role} report": report_files(path) for role, path in reports.items()}
    check_outputs("gate", outputs, inputs, work_dir=work_dir)


def write_outputs(
    result: GateResult, json_path: Path | None, md_path: Path | None, junit_path: Path | None
) -> None:
    from alexnet_deploy.gate.stability import unstable_configurations

    if json_path:
        steps = change_commits(result)
        write_json_atomic(
            json_path,
            {
                "schema": GATE_SCHEMA,  # marks the file as the tool's (a later gate may replace it)
                "passed": result.passed,
                "exit_code": result.exit_code,
                "summary": result.summary(),
                "notes": result.notes,
                "env_mismatch": result.env_mismatch,
                "mode": result.mode,
                "mode_means": result.means,
                # change: worse is positive (the rule's input); metric_change: the metric's move
                "verdicts": [
                    {
                        **asdict(v),
                        "metric_change": metric_change(v),
                        **({"change_commit": steps.get(v.config)} if steps else {}),
                    }
                    for v in result.verdicts
                ],
                "history": None if result.history is None else asdict(result.history),
                "unstable": unstable_configurations(result),  # configuration -> why
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
