"""The gate's result on the terminal (or as ``--format md|csv|json`` rows), and what a store
failure after the verdict does to the exit code: shared by ``gate`` and ``gate --history
STORE``."""

from __future__ import annotations

from collections.abc import Callable

from rich.markup import escape

from alexnet_deploy.cli.console import err_console, out_console, print_table
from alexnet_deploy.errors import EXIT_FAILURE, EXIT_USAGE, AlexnetDeployError
from alexnet_deploy.render import TableFormat

SHOWN_NAMES = 3  # a note shared by more configurations names this many, then counts the rest


def _note_lines(verdicts) -> list[str]:
    """One line per distinct note of the verdicts worth a line: a note that several
    configurations share word for word (the same metric) is one line naming how many."""
    from alexnet_deploy.gate.compare import INCONCLUSIVE, NOT_COMPARABLE, NOT_JUDGED, REGRESSED

    shared: dict[tuple[str, str], list[str]] = {}
    for verdict in verdicts:
        if verdict.note and verdict.verdict in (
            REGRESSED,
            INCONCLUSIVE,
            NOT_COMPARABLE,
            NOT_JUDGED,
        ):
            shared.setdefault((verdict.metric, verdict.note), []).append(verdict.config)
    lines = []
    for (metric, note), configs in shared.items():
        if len(configs) == 1:
            lines.append(f"  {configs[0]} {metric}: {note}")
            continue
        named = ", ".join(configs[:SHOWN_NAMES])
        more = f" and {len(configs) - SHOWN_NAMES} more" if len(configs) > SHOWN_NAMES else ""
        lines.append(f"  {len(configs)} configurations ({named}{more}) {metric}: {note}")
    return lines


def show_result(result, strict: bool, fmt: TableFormat = TableFormat.table) -> int:
    """The verdicts, their notes and the summary line; the exit code (``--strict``: a check
    that could not be compared or called fails, and the line says so). A table leaves each
    note and step commit out of its rows (the notes under it name them); ``--format
    md|csv|json`` rows keep both."""
    from alexnet_deploy.gate.output import result_frame

    frame = result_frame(result)
    if frame.height and fmt is TableFormat.table:  # notes (and steps' commits) under the table
        print_table(frame.drop("note", "change_commit", strict=False), "alexnet-deploy gate")
    elif frame.height:
        print_table(frame, "alexnet-deploy gate")
    for line in _note_lines(result.verdicts):
        out_console.print(line, highlight=False, soft_wrap=True)
    for note in result.notes:
        err_console.print(f"[bold yellow]{escape(note)}[/]", soft_wrap=True)
    skipped = len(result.unsettled)
    if skipped and result.comparable:
        err_console.print(
            f"Warning: {skipped} check(s) not comparable or inconclusive (listed above); "
            "--strict fails on them.",
            soft_wrap=True,
        )
    code = result.exit_code
    summary = result.summary()
    if strict and code == 0 and skipped:
        code = 2
        summary = (
            f"gate FAIL (--strict): {skipped} check(s) not comparable or inconclusive; "
            + summary.split(": ", 1)[-1]
        )
    out_console.print(summary, highlight=False, soft_wrap=True)
    return code


def after_verdict(step: Callable[[], None]) -> AlexnetDeployError | None:
    """Run a store step once the verdict is out; its failure is returned, not raised, so what
    follows (``--update-baseline``) still happens, and :func:`raise_store_failure` ends."""
    try:
        step()
    except AlexnetDeployError as err:
        return err
    return None


def raise_store_failure(failure: AlexnetDeployError | None, code: int, kept: str = "") -> None:
    """A store failure after the verdict, raised as its one ``Error:`` line (``kept``: what was
    kept, where the message does not say so already). Its exit code is the verdict's when that
    is 1, so a regression is never hidden behind the store's 2 (a usage error, as a broken
    baseline is); else 2."""
    if failure is None:
        return
    regressed = code == EXIT_FAILURE
    failure.exit_code = EXIT_FAILURE if regressed else EXIT_USAGE
    said = [kept] if kept else []
    said += ["the verdict above is a regression: exit 1"] if regressed else []
    failure.message += f" ({'; '.join(said)})" if said else ""
    raise failure
