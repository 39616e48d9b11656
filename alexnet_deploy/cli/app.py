"""The ``alexnet-deploy`` command line: a thin layer over the library.

Commands only parse options, call one library function and render its result. Heavy modules
(torch, onnx, onnxruntime) are imported inside the commands so that ``--help`` is instant.
User errors (:class:`AlexnetDeployError`) become ``Error: ...`` on stderr with a hint and exit
code 1 (2 for usage errors), in :func:`run`, the one place that maps them.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Annotated

import typer
from rich.markup import escape

from alexnet_deploy import constants as C
from alexnet_deploy.cli.bench import bench
from alexnet_deploy.cli.build import build
from alexnet_deploy.cli.calibrate import calibrate, fp16
from alexnet_deploy.cli.console import err_console
from alexnet_deploy.cli.doctor import doctor
from alexnet_deploy.cli.export import export, summary
from alexnet_deploy.cli.gate import gate
from alexnet_deploy.cli.package import package
from alexnet_deploy.cli.tune import tune
from alexnet_deploy.errors import AlexnetDeployError

app = typer.Typer(
    name="alexnet-deploy",
    help="Take AlexNet from PyTorch to inference engines, and prove how fast and faithful they are.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    debug: Annotated[
        bool,
        typer.Option("--debug", help=f"Show tracebacks for errors (or set {C.DEBUG_ENV_VAR}=1)."),
    ] = False,
) -> None:
    """Take AlexNet from PyTorch to inference engines, and prove how fast and faithful they are."""


for command in (summary, export, calibrate, fp16, build, bench, tune, package, gate, doctor):
    app.command()(command)


def _debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get(C.DEBUG_ENV_VAR, "") not in ("", "0")


def run(argv: list[str] | None = None) -> int:
    """Run the CLI on ``argv`` and return its exit code; user errors become one-line messages."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        app(args=argv, prog_name="alexnet-deploy", standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except AlexnetDeployError as err:
        if _debug_requested(argv):
            traceback.print_exc()
        err_console.print(
            f"[bold red]Error:[/] {escape(err.message)}", highlight=False, soft_wrap=True
        )
        if err.hint:
            err_console.print(f"[dim]Hint:[/] {escape(err.hint)}", highlight=False, soft_wrap=True)
        return err.exit_code
    except KeyboardInterrupt:
        err_console.print("Interrupted.")
        return 130
    return 0


def main() -> None:
    sys.exit(run())
