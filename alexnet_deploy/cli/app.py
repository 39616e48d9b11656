"""The ``alexnet-deploy`` command line: a thin layer over the library.

Commands only parse options, call one library function and render its result. Heavy modules
(torch, onnx, onnxruntime) are imported inside the commands so that ``--help`` is instant.
User errors (:class:`AlexnetDeployError`) become ``Error: ...`` on stderr with a hint and exit
code 1 (2 for usage errors), in :func:`run`, the one place that maps them.
"""

from __future__ import annotations

import errno
import os
import sys
import traceback
from typing import Annotated

import typer
from rich.markup import escape

from alexnet_deploy import constants as C
from alexnet_deploy.cli.bench import bench
from alexnet_deploy.cli.build import build
from alexnet_deploy.cli.calibrate import bf16, calibrate, fp16
from alexnet_deploy.cli.compare import compare
from alexnet_deploy.cli.console import err_console, set_quiet
from alexnet_deploy.cli.dashboard import dashboard
from alexnet_deploy.cli.doctor import doctor
from alexnet_deploy.cli.export import export, summary
from alexnet_deploy.cli.gate import gate
from alexnet_deploy.cli.importer import import_
from alexnet_deploy.cli.package import package
from alexnet_deploy.cli.plan import plan
from alexnet_deploy.cli.predict import predict
from alexnet_deploy.cli.repeated import refuse_repeated_options
from alexnet_deploy.cli.store import store_app
from alexnet_deploy.cli.tune import tune
from alexnet_deploy.errors import AlexnetDeployError, Interrupted
from alexnet_deploy.fileio import Changes, recording_changes

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
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress lines or spinners; results only.")
    ] = False,
) -> None:
    """Take AlexNet from PyTorch to inference engines, and prove how fast and faithful they are."""
    set_quiet(quiet)


for command in (
    summary,
    export,
    calibrate,
    fp16,
    bf16,
    build,
    bench,
    tune,
    package,
    gate,
    predict,
    compare,
    plan,
    dashboard,
    doctor,
):
    app.command()(command)
app.command(name="import")(import_)
app.add_typer(store_app)


def _debug_requested(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get(C.DEBUG_ENV_VAR, "") not in ("", "0")


def _interrupt_behind(exc: BaseException) -> KeyboardInterrupt | None:
    seen = exc
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _say_interrupted(changes: Changes, interrupt: KeyboardInterrupt | None = None) -> None:
    """What the command says it had done (errors.Interrupted), else exactly what the
    interrupted run changed (fileio's journal), or that it changed nothing."""
    done = changes.lines()
    text = (
        f"Interrupted: {interrupt.done}"
        if isinstance(interrupt, Interrupted)
        else f"Interrupted: this run {'; '.join(done)} before it stopped; every other file is "
        "as it was, and nothing half-written was kept."
        if done
        else "Interrupted: no file was changed (files that were there before are as they were); "
        "nothing half-written was kept."
    )
    err_console.print(text, highlight=False, soft_wrap=True, markup=False)


def run(argv: list[str] | None = None) -> int:
    """Run the CLI on ``argv`` and return its exit code; user errors become one-line messages."""
    argv = list(sys.argv[1:] if argv is None else argv)
    with recording_changes() as changes:
        return _run(argv, changes)


def _run(argv: list[str], changes: Changes) -> int:
    try:
        refuse_repeated_options(typer.main.get_command(app), argv)
        app(args=argv, prog_name="alexnet-deploy", standalone_mode=True)
    except SystemExit as exc:
        interrupt = _interrupt_behind(exc)
        if interrupt is not None:  # Typer turns Ctrl-C into a silent exit 130
            _say_interrupted(changes, interrupt)
            return 130
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
    except KeyboardInterrupt as interrupt:
        _say_interrupted(changes, interrupt)
        return 130
    except OSError as err:
        if err.errno not in (errno.ENOSPC, errno.EDQUOT) or _debug_requested(argv):
            raise
        where = f" writing {err.filename}" if err.filename else ""
        err_console.print(
            f"[bold red]Error:[/] the disk is full{where} ({escape(err.strerror or str(err))}); "
            "nothing half-written was kept",
            highlight=False,
            soft_wrap=True,
        )
        err_console.print(
            "[dim]Hint:[/] free space on that file system, or write elsewhere (-o, --out, --work-dir)",
            highlight=False,
            soft_wrap=True,
        )
        return 1
    return 0


def main() -> None:
    sys.exit(run())
