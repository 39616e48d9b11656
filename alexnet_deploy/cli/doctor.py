"""doctor: what this machine can run."""

from __future__ import annotations

from alexnet_deploy.cli.console import print_frame
from alexnet_deploy.cli.options import FormatOpt
from alexnet_deploy.render import TableFormat


def doctor(fmt: FormatOpt = TableFormat.table) -> None:
    """What this machine can run: runtimes, providers, CPU features, GPU, and why not."""
    import polars as pl

    from alexnet_deploy.doctor import run_checks

    frame = pl.DataFrame([vars(c) for c in run_checks()])
    print_frame(frame, fmt, title="alexnet-deploy doctor")
