"""predict: classify real images with any built engine."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from alexnet_deploy import constants as C
from alexnet_deploy.cli.console import err_console, out_console, print_frame, status
from alexnet_deploy.cli.options import (
    BackendChoice,
    FormatOpt,
    PositiveInt,
    PrecisionChoice,
    WorkDirOpt,
    refuse_pixel_model,
)
from alexnet_deploy.render import TableFormat


def predict(
    images: Annotated[
        list[Path],
        typer.Argument(
            help="Image files (JPEG, PNG, GIF, WebP, BMP, TIFF) or directories of them."
        ),
    ],
    model: Annotated[
        Path | None,
        typer.Option("--model", help="An FP32 export (default: the main job's, made if needed)."),
    ] = None,
    backend: Annotated[
        BackendChoice, typer.Option("--backend", help="Runtime to classify with.")
    ] = BackendChoice.ort,
    precision: Annotated[
        PrecisionChoice, typer.Option("--precision", help="Precision to run.")
    ] = PrecisionChoice.fp32,
    top: Annotated[
        int, typer.Option("--top", help="How many classes per image.", callback=PositiveInt)
    ] = 5,
    labels: Annotated[
        Path | None,
        typer.Option(
            "--labels",
            help="Class names, one per line (default: the model card's, else ImageNet-1k's).",
        ),
    ] = None,
    fmt: FormatOpt = TableFormat.table,
    work_dir: WorkDirOpt = Path(C.DEFAULT_WORK_DIR),
) -> None:
    """Classify real images: top-k classes and probabilities, the engine, the time per stage."""
    from alexnet_deploy import api
    from alexnet_deploy.predict import as_json, predictions_frame

    refuse_pixel_model(model, "predict")
    with status("preparing") as shown:
        results, engine, info = api.predict(
            images, model, backend=backend.value, precision=precision.value, top=top,
            labels=labels, work_dir=work_dir, progress=shown.update,
        )  # fmt: skip
    described = f"{engine.sidecar.backend} {engine.sidecar.precision} ({engine.path})"
    if fmt is TableFormat.json:
        sys.stdout.write(
            json.dumps(as_json(results, described, info.model_name), indent=2) + "\n"
        )
    else:
        title = f"alexnet-deploy predict with {info.model_name}: {described}"
        print_frame(predictions_frame(results), fmt, title=title)
    if info.trained is False:
        err_console.print(
            "Note: untrained weights (seeded): the classes below show what the pipeline does, not "
            "what the image is; pass --model of an export made with --weights.",
            highlight=False,
            soft_wrap=True,
        )
    failed = [r for r in results if r.error]
    for r in failed:
        err_console.print(f"Error: {r.path}: {r.error}", highlight=False, soft_wrap=True)
    ok = [r for r in results if not r.error]
    if ok and fmt is TableFormat.table:
        totals = {s: sum(r.seconds[s] for r in ok) for s in ok[0].seconds}
        whole = sum(totals.values())
        out_console.print(
            "time per stage, all images: "
            + ", ".join(
                f"{s} {1e3 * t:.1f} ms ({100 * t / whole:.0f}%)" for s, t in totals.items()
            ),
            highlight=False,
            soft_wrap=True,
        )
    if failed:
        raise typer.Exit(1)
