"""compare: where a lower-precision artifact loses precision, layer by layer."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from alexnet_deploy import constants as C
from alexnet_deploy.cli.console import (
    err_console,
    out_console,
    print_frame,
    status,
    use_format,
)
from alexnet_deploy.cli.options import CompareRuntimeChoice, FormatOpt, PositiveInt, Seed
from alexnet_deploy.render import TableFormat


def compare(
    reference: Annotated[Path, typer.Argument(help="The FP32 model (alexnet-deploy export).")],
    candidate: Annotated[
        Path, typer.Argument(help="An artifact made from it: FP16 or INT8 (Q/DQ).")
    ],
    data: Annotated[
        str,
        typer.Option("--data", help="Images: a folder, a .npy/.npz array, or 'shipped'."),
    ] = "shipped",
    count: Annotated[
        int | None,
        typer.Option(
            "--count",
            help=f"How many images, at most (default: all, at most {C.MAX_EVAL_SIZE}).",
            callback=PositiveInt,
        ),
    ] = None,
    runtime: Annotated[
        CompareRuntimeChoice,
        typer.Option(
            "--runtime",
            help="What computes the candidate: emulated (Q/DQ as written, in float), ort (ONNX "
            "Runtime's optimized graph on this CPU, as build --backend ort runs it) or openvino.",
        ),
    ] = CompareRuntimeChoice.emulated,
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size", help="Images per run (the memory held at once).", callback=PositiveInt
        ),
    ] = 8,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write compare.json, .csv and .md to this directory."),
    ] = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write SNR per layer and error growth (PNG).")
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed for sampling the images.", callback=Seed)
    ] = C.DEFAULT_SEED,
    profile: Annotated[
        bool,
        typer.Option(
            "--profile",
            help="Also time each layer with the runtime's own profiler (ONNX Runtime's, or "
            "OpenVINO's performance counters), the candidate as deployed.",
        ),
    ] = False,
    fmt: FormatOpt = TableFormat.table,
) -> None:
    """Per layer: cosine, SNR, max error and INT8 clip rate of CANDIDATE against REFERENCE on
    the same real images; then the logits."""
    use_format(fmt)
    from alexnet_deploy import api
    from alexnet_deploy.outputs import OutputDir, check_outputs
    from alexnet_deploy.precision.report import (
        REPORT_FILES,
        as_json,
        layers_frame,
        plot_comparison,
        worst_layers,
        write_comparison,
    )

    check_outputs(
        "compare", {"--out": None if out is None else OutputDir(out, REPORT_FILES), "--plot": plot},
        {"reference model": reference, "candidate model": candidate, "images": data},
    )  # fmt: skip
    with status("comparing") as shown:
        result = api.compare(
            reference, candidate, data, count=count, runtime=runtime.value,
            batch_size=batch_size, seed=seed, profile_runs=C.PROFILE_RUNS if profile else 0,
            progress=shown.update,
        )  # fmt: skip
    if fmt is TableFormat.json:  # stdout: the JSON alone (use_format sends the rest to stderr)
        sys.stdout.write(json.dumps(as_json(result), indent=2) + "\n")
    else:
        title = (
            f"{result.model_name}: {candidate.name} vs {reference.name} ({result.runtime}, "
            f"{result.images} images)"
        )
        frame, left_out = layers_frame(result), ""
        if fmt is TableFormat.table:  # a terminal's table: the worst layers of a deep network
            frame, left_out = worst_layers(result, frame, C.TABLE_TOP_LAYERS)
        print_frame(frame, fmt, title=title)
        if left_out:
            err_console.print(left_out, highlight=False, soft_wrap=True, markup=False)
    notes = [
        f"peak intermediate tensors held: {result.peak_tensor_bytes / 1e6:.1f} MB "
        f"(one batch of {result.batch_size})"
    ]
    if result.folded:
        notes.append(f"folded into their activation (no own tensor): {', '.join(result.folded)}")
    if result.fused:
        notes.append(
            f"not computed as tensors of their own by {result.runtime} (fused into other "
            f"kernels or renamed by its graph optimizations): {', '.join(result.fused)}"
        )
    if result.clip_note:
        notes.append(result.clip_note)
    if result.profile_note:
        notes.append(result.profile_note)
    for note in notes:
        err_console.print(note, highlight=False, soft_wrap=True, markup=False)
    if out is not None:
        paths = write_comparison(result, out)
        out_console.print("wrote " + ", ".join(str(p) for p in paths.values()), highlight=False)
    if plot is not None:
        out_console.print(f"wrote {plot_comparison(result, plot)}", highlight=False)
