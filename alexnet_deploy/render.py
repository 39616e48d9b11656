"""Tables out: a polars DataFrame as a terminal table, CSV, JSON or Markdown."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl


class TableFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"
    md = "md"


def _cell(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return "-"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    from rich.markup import escape

    return escape(str(value))


# A text column may wrap its cells onto more lines down to this width (never its header);
# numbers and short labels never wrap.
WRAP_TEXT_AT = 24


def _widest(frame: pl.DataFrame, name: str) -> int:
    return max([len(name), *(len(_cell(v)) for v in frame[name].to_list())])


def _needs(frame: pl.DataFrame) -> list[int]:
    """Characters each column needs in a table, borders included: its widest header or cell;
    a text column wider than WRAP_TEXT_AT wraps, so it needs only that (or its header)."""
    needs = []
    for name, dtype in frame.schema.items():
        widest = _widest(frame, name)
        if not dtype.is_numeric() and widest > WRAP_TEXT_AT:
            widest = max(len(name), WRAP_TEXT_AT)
        needs.append(widest + 3)
    return needs


def table_width(frame: pl.DataFrame) -> int:
    """The width at which ``frame``'s table shows every header and cell whole on one line."""
    return sum(_widest(frame, name) + 3 for name in frame.columns) + 1


def fit_columns(frame: pl.DataFrame, width: int | None) -> tuple[list[str], list[str]]:
    """The leading columns of ``frame`` whose table fits ``width`` characters with no header or
    cell cut (None: all), and the ones left out. The frame's column order is its priority."""
    names = list(frame.columns)
    if width is None:
        return names, []
    needs = _needs(frame)
    shown, used = [], 1  # the table's left border
    for name, need in zip(names, needs, strict=True):
        if used + need > width and shown:
            break
        shown.append(name)
        used += need
    return shown, names[len(shown) :]


def rich_table(frame: pl.DataFrame, title: str | None = None):
    """A rich Table with numbers right-aligned and thousands separated; headers never cut."""
    from rich.table import Table

    table = Table(title=title)
    for (name, dtype), need in zip(frame.schema.items(), _needs(frame), strict=True):
        table.add_column(
            name,
            justify="right" if dtype.is_numeric() else "left",
            min_width=need - 3,
            overflow="fold",
        )
    for row in frame.iter_rows():
        table.add_row(*(_cell(v) for v in row))
    return table


def frame_as_text(frame: pl.DataFrame, fmt: TableFormat) -> str:
    """CSV, JSON (a list of row objects) or Markdown text of ``frame``."""
    import polars as pl

    if fmt is TableFormat.csv:
        return frame.write_csv()
    if fmt is TableFormat.json:
        return frame.write_json() + "\n"
    if fmt is TableFormat.md:
        # a missing value reads "-", as in the terminal table (polars would print "null")
        frame = frame.with_columns(
            pl.col(name).cast(pl.String).fill_null("-")
            for name in frame.columns
            if frame[name].null_count()
        )
        with pl.Config(
            tbl_formatting="MARKDOWN",
            tbl_hide_column_data_types=True,
            tbl_hide_dataframe_shape=True,
            tbl_rows=-1,
            tbl_cols=-1,
            tbl_width_chars=10_000,
            fmt_str_lengths=10_000,
        ):
            return str(frame) + "\n"
    raise ValueError(f"{fmt} is rendered with rich_table")
