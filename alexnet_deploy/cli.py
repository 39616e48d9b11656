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
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from alexnet_deploy import constants as C
from alexnet_deploy.errors import AlexnetDeployError
from alexnet_deploy.render import TableFormat

app = typer.Typer(
    name="alexnet-deploy",
    help="Take AlexNet from PyTorch to inference engines, and prove how fast and faithful they are.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

out_console = Console()
err_console = Console(stderr=True)


class VariantChoice(str, Enum):
    torchvision = "torchvision"
    paper = "paper"


VariantOpt = Annotated[
    VariantChoice,
    typer.Option(
        "--variant", help="torchvision (loads torchvision weights) or paper (2012 network)."
    ),
]
FormatOpt = Annotated[TableFormat, typer.Option("--format", help="Output format.")]
SeedOpt = Annotated[
    int, typer.Option("--seed", help="Seed for untrained weights and validation inputs.")
]


@app.callback()
def _root(
    debug: Annotated[
        bool,
        typer.Option("--debug", help=f"Show tracebacks for errors (or set {C.DEBUG_ENV_VAR}=1)."),
    ] = False,
) -> None:
    """Take AlexNet from PyTorch to inference engines, and prove how fast and faithful they are."""


def _print_frame(frame, fmt: TableFormat, title: str) -> None:
    from alexnet_deploy.render import frame_as_text, rich_table

    if fmt is TableFormat.table:
        out_console.print(rich_table(frame, title=title))
    else:
        sys.stdout.write(frame_as_text(frame, fmt))


@app.command()
def summary(
    variant: VariantOpt = VariantChoice.torchvision, fmt: FormatOpt = TableFormat.table
) -> None:
    """Per-layer table of a variant: output shape (C x H x W), parameters, MACs, totals."""
    from alexnet_deploy.models.summary import layer_table
    from alexnet_deploy.models.variants import get_variant

    spec = get_variant(variant.value)
    _print_frame(layer_table(spec), fmt, title=f"AlexNet ({spec.name}): {spec.description}")


@app.command()
def export(
    variant: VariantOpt = VariantChoice.torchvision,
    weights: Annotated[
        Path | None,
        typer.Option(
            "--weights",
            help="State-dict checkpoint (torch.save(model.state_dict())). "
            "Without it, weights are initialized from --seed and labelled untrained.",
        ),
    ] = None,
    seed: SeedOpt = C.DEFAULT_SEED,
    opset: Annotated[
        int, typer.Option("--opset", help=f"ONNX opset, {C.MIN_OPSET} to {C.MAX_OPSET}.")
    ] = C.DEFAULT_OPSET,
    softmax: Annotated[
        bool, typer.Option("--softmax", help=f"Also output softmax as '{C.PROBABILITIES_NAME}'.")
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            help=f"ONNX file to write [default: {C.DEFAULT_WORK_DIR}/alexnet-VARIANT.onnx].",
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing output.")] = False,
) -> None:
    """Export a variant to ONNX (dynamic batch) and validate it against PyTorch."""
    from alexnet_deploy.exporter.config import ExportConfig
    from alexnet_deploy.exporter.pipeline import export_onnx
    from alexnet_deploy.models.variants import get_variant

    spec = get_variant(variant.value)
    config = ExportConfig(opset=opset, softmax=softmax)
    out = output or Path(C.DEFAULT_WORK_DIR) / f"alexnet-{spec.name}.onnx"
    with err_console.status("exporting") as status:
        result = export_onnx(
            spec,
            out,
            weights=weights,
            seed=seed,
            config=config,
            force=force,
            progress=lambda msg: status.update(msg),
        )
    _print_export_result(result)


def _print_export_result(result) -> None:
    import polars as pl

    from alexnet_deploy.render import rich_table

    frame = pl.DataFrame(
        [
            {
                "batch": c.batch,
                "max_abs_diff": c.max_abs_diff,
                "max_rel_diff": c.max_rel_diff,
                "top1_agreement": c.top1_agreement,
                "within_tolerance": c.within_tolerance,
            }
            for c in result.comparisons
        ]
    )
    out_console.print(rich_table(frame, title="ONNX Runtime vs PyTorch (seeded inputs)"))
    out_console.print(
        f"wrote {result.path} ({result.size_bytes / 1e6:.1f} MB, sha256 {result.sha256[:12]}), "
        f"{result.weights.label}; export {result.export_seconds:.1f} s, "
        f"validation {result.validate_seconds:.1f} s; manifest {result.manifest}"
    )


@app.command()
def doctor(fmt: FormatOpt = TableFormat.table) -> None:
    """What this machine can run: runtimes, providers, CPU features, GPU, and why not."""
    import polars as pl

    from alexnet_deploy.doctor import run_checks

    frame = pl.DataFrame([vars(c) for c in run_checks()])
    _print_frame(frame, fmt, title="alexnet-deploy doctor")


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
        err_console.print(f"[bold red]Error:[/] {err.message}", highlight=False, soft_wrap=True)
        if err.hint:
            err_console.print(f"[dim]Hint:[/] {err.hint}", highlight=False, soft_wrap=True)
        return err.exit_code
    except KeyboardInterrupt:
        err_console.print("Interrupted.")
        return 130
    return 0


def main() -> None:
    sys.exit(run())
