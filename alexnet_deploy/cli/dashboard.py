"""dashboard: a static site of every configuration's trend, from a results store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from alexnet_deploy import constants as C
from alexnet_deploy.cli.console import out_console, status
from alexnet_deploy.cli.options import ForceOpt, WorkDirOpt


def dashboard(
    output: Annotated[
        Path,
        typer.Option(
            "-o",
            "--output",
            help="Site directory (made new; --force replaces only a site this command wrote).",
        ),
    ],
    store: Annotated[
        str | None,
        typer.Argument(
            help="Results store: a .sqlite file or a postgresql:// URL (default: "
            "WORK_DIR/results.sqlite).",
            show_default=False,
        ),
    ] = None,
    work_dir: WorkDirOpt = Path(C.DEFAULT_WORK_DIR),
    force: ForceOpt = False,
) -> None:
    """Write a static site of a results store's trends, which opens with no network.

    An index of every configuration's latest run against the previous one of its machine class
    (CPU class and CPU model), and one trend page per configuration, machine class and model:
    images/s, p50, p99 and fidelity over commits, the gate's verdicts and the change points
    marked. Off a terminal (a CI log), one line per commit where steps came in instead of one
    per page."""
    from alexnet_deploy.dashboard.site import change_lines, write_dashboard
    from alexnet_deploy.store.from_report import store_spec

    spec = store_spec(store or "default", work_dir)
    each = out_console.is_terminal  # a CI log gets a summary, not a line per page

    with status("writing the dashboard") as shown:

        def progress(message: str) -> None:
            if each or not message.startswith("page "):
                shown.update(message)

        site = write_dashboard(spec, output, force=force, work_dir=work_dir, progress=progress)
    for line in change_lines(site, each=each):
        out_console.print(f"change point: {line}", highlight=False, soft_wrap=True)
    out_console.print(
        f"dashboard of {site.store} ({site.runs} runs, {len(site.trends)} trends): "
        f"{site.index} (opens from the file; no network needed)",
        highlight=False,
        soft_wrap=True,
    )
