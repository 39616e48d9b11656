"""The two consoles, and how a command shows progress and tables on a terminal and off one.

On a terminal: rich's spinner and progress bar (transient) and tables fitted to the width. Off
a terminal (a CI log, ``| tee``): one line per stage and per finished configuration, each with
the elapsed time (and an estimate of what is left), no carriage returns; tables at their full
width. ``--quiet`` turns progress off everywhere.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator

from rich.console import Console

from alexnet_deploy.render import TableFormat

out_console = Console()
err_console = Console(stderr=True)
_QUIET = {"on": False}
_FORMAT = {"fmt": TableFormat.table}
_STARTED = time.monotonic()  # the running command's start (set_quiet restarts it)


def set_quiet(quiet: bool) -> None:
    """Called once per command: progress on or off, and the command's clock started."""
    global _STARTED
    _QUIET["on"] = quiet
    _STARTED = time.monotonic()
    use_format(TableFormat.table)


def use_format(fmt: TableFormat) -> None:
    """``--format md|csv|json``: stdout carries the command's table alone, for a pipe or a
    script; every other line the command prints goes to stderr."""
    _FORMAT["fmt"] = fmt
    out_console._file = sys.stderr if fmt is not TableFormat.table else None


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}:{secs:02d}"


class LineStatus:
    """A spinner's stand-in off a terminal: each new message is a line with the time since the
    command started."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.last = ""

    def update(self, message: str) -> None:
        if message != self.last and not _QUIET["on"]:
            err_console.print(
                f"[{_clock(time.monotonic() - self.started)}] {message}",
                highlight=False,
                soft_wrap=True,
            )
        self.last = message


class _Silent:
    def update(self, message: str) -> None:
        pass


@contextlib.contextmanager
def status(message: str) -> Iterator:
    """``with status("calibrating") as s: s.update("...")``: a spinner on a terminal, lines
    elsewhere, nothing with --quiet."""
    if _QUIET["on"]:
        yield _Silent()
    elif err_console.is_terminal:
        with err_console.status(message) as spinner:
            yield spinner
    else:
        line = LineStatus(_STARTED)
        line.update(message)
        yield line


class LineProgress:
    """rich.progress.Progress's calls that bench makes (add_task, update, advance,
    remove_task), printed as one line per configuration started, with the elapsed time and an
    estimate of what is left from the configurations done."""

    def __init__(self) -> None:
        self.tasks: dict[int, dict] = {}
        self.started = _STARTED

    def add_task(self, description: str, total: int | None = None) -> int:
        task = len(self.tasks)
        self.tasks[task] = {"total": total, "done": 0, "description": description, "t0": None}
        if total is None:
            LineStatus(self.started).update(description)
        return task

    def update(self, task: int, description: str | None = None, **_ignored) -> None:
        state = self.tasks[task]
        if description is None or description == state["description"] or _QUIET["on"]:
            return
        state["description"] = description
        now = time.monotonic()
        if state["total"] is None:  # a stage
            LineStatus(self.started).update(description)
            return
        state["t0"] = state["t0"] or now
        done, total = state["done"], state["total"]
        eta = ""
        if done:
            left = (now - state["t0"]) / done * (total - done)
            eta = f", about {_clock(left)} left"
        err_console.print(
            f"[{_clock(now - self.started)}] {done + 1}/{total} {description}{eta}",
            highlight=False,
            soft_wrap=True,
        )

    def advance(self, task: int, amount: int = 1) -> None:
        self.tasks[task]["done"] += amount

    def remove_task(self, task: int) -> None:
        self.tasks.pop(task, None)


@contextlib.contextmanager
def bench_progress() -> Iterator:
    """A progress bar on a terminal, lines off one, nothing with --quiet (same calls)."""
    if err_console.is_terminal and not _QUIET["on"]:
        from rich.progress import (
            BarColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err_console,
            transient=True,
        ) as bar:
            yield bar
    else:
        yield LineProgress()


def print_table(frame, title: str, note_where: str = "") -> None:
    """A frame as a table: on a terminal, the columns that fit its width in the frame's order
    (the rest named below it, with where to find them); off a terminal, every column."""
    from alexnet_deploy.render import fit_columns, frame_as_text, rich_table, table_width

    if _FORMAT["fmt"] is not TableFormat.table:
        sys.stdout.write(frame_as_text(frame, _FORMAT["fmt"]))
        return
    width = out_console.width if out_console.is_terminal else None
    shown, left_out = fit_columns(frame, width)
    table = rich_table(frame.select(shown), title=title)
    if width is not None:
        out_console.print(table, crop=True)
    else:
        # off a terminal nothing wraps a cell: the table is as wide as its content needs (a
        # console of that width: print(width=) is capped at the console's own width)
        wide = Console(file=out_console.file, width=max(out_console.width, table_width(frame)))
        wide.print(table, crop=False)
    if left_out:
        where = f" ({note_where})" if note_where else ""
        out_console.print(
            f"{len(left_out)} more column(s) not shown at {width} columns: "
            f"{', '.join(left_out)}{where}; --format md|csv|json prints every column",
            highlight=False,
            soft_wrap=True,
        )


def print_frame(frame, fmt: TableFormat, title: str, note_where: str = "") -> None:
    use_format(fmt)
    print_table(frame, title, note_where)
