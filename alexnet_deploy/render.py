"""Tables out: a polars DataFrame as a terminal table, CSV, JSON or Markdown."""

from __future__ import annotations

from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl


class TableFormat(str, Enum):
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


def rich_table(frame: pl.DataFrame, title: str | None = None):
    """A rich Table with numbers right-aligned and thousands separated."""
    from rich.table import Table

    table = Table(title=title)
    for name, dtype in frame.schema.items():
        table.add_column(name, justify="right" if dtype.is_numeric() else "left")
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
