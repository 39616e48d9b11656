"""The two consoles and the frame printer every command renders with."""

from __future__ import annotations

import sys

from rich.console import Console

from alexnet_deploy.render import TableFormat

out_console = Console()
err_console = Console(stderr=True)


def print_frame(frame, fmt: TableFormat, title: str) -> None:
    from alexnet_deploy.render import frame_as_text, rich_table

    if fmt is TableFormat.table:
        out_console.print(rich_table(frame, title=title))
    else:
        sys.stdout.write(frame_as_text(frame, fmt))
