"""summary and export."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from alexnet_deploy import constants as C
from alexnet_deploy.cli.console import out_console, print_frame, print_table, status
from alexnet_deploy.cli.options import FormatOpt, SeedOpt, VariantChoice, VariantOpt, between
from alexnet_deploy.models.variants import DEFAULT_VARIANT
from alexnet_deploy.render import TableFormat


def summary(
    variant: VariantOpt = VariantChoice(DEFAULT_VARIANT), fmt: FormatOpt = TableFormat.table
) -> None:
    """Per-layer table of a variant: output shape (C x H x W), parameters, MACs, totals."""
    from alexnet_deploy.models.summary import layer_table
    from alexnet_deploy.models.variants import get_variant

    spec = get_variant(variant.value)
    print_frame(layer_table(spec), fmt, title=f"AlexNet ({spec.name}): {spec.description}")


def export(
    variant: VariantOpt = VariantChoice(DEFAULT_VARIANT),
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
        int,
        typer.Option(
            "--opset",
            help=f"ONNX opset, {C.MIN_OPSET} to {C.MAX_OPSET}.",
            callback=between(C.MIN_OPSET, C.MAX_OPSET),
        ),
    ] = C.DEFAULT_OPSET,
    softmax: Annotated[
        bool, typer.Option("--softmax", help=f"Also output softmax as '{C.PROBABILITIES_NAME}'.")
    ] = False,
    preprocess: Annotated[
        bool,
        typer.Option(
            "--preprocess",
            help="Bake the preprocessing into the graph: the model takes a decoded RGB image as "
            "uint8 [batch, height, width, 3] of any size and resizes, crops and normalizes it "
            "itself (opset 18+). For deployment; calibrate, build and bench take the float export.",
        ),
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option(
            "-o",
            "--output",
            help=f"ONNX file to write (default: {C.DEFAULT_WORK_DIR}/alexnet-VARIANT.onnx).",
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing output.")] = False,
) -> None:
    """Export a variant to ONNX (dynamic batch) and validate it against PyTorch."""
    from alexnet_deploy import api
    from alexnet_deploy.exporter.config import ExportConfig

    config = ExportConfig(opset=opset, softmax=softmax, preprocess=preprocess)
    with status("exporting") as shown:
        result = api.export(
            output,
            variant=variant.value,
            weights=weights,
            seed=seed,
            config=config,
            force=force,
            progress=shown.update,
        )
    _print_export_result(result)


def _print_export_result(result) -> None:
    import polars as pl

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
    print_table(frame, "ONNX Runtime vs PyTorch (seeded inputs)")
    out_console.print(
        f"wrote {result.path} ({result.size_bytes / 1e6:.1f} MB, sha256 {result.sha256[:12]}), "
        f"{result.weights.label}; export {result.export_seconds:.1f} s, "
        f"validation {result.validate_seconds:.1f} s; manifest {result.manifest}"
    )
    if result.pixels_check:
        check = result.pixels_check
        out_console.print(
            f"input: {C.PIXELS_INPUT_NAME!r}, uint8 [batch, height, width, 3], any size; the "
            f"graph's resize, crop and normalization against Pillow's on {check['images']} "
            f"images: at most {check['max_levels']:.2f} pixel levels apart "
            f"(mean {check['mean_levels']:.3f})",
            highlight=False,
            markup=False,
        )
