"""package: a Triton model repository."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from alexnet_deploy import constants as C
from alexnet_deploy.cli.console import err_console, out_console, status
from alexnet_deploy.cli.options import ForceOpt, PositiveInt, WorkDirOpt, refuse_pixel_model


def package(
    triton: Annotated[
        Path, typer.Option("--triton", help="Output directory: a Triton model repository.")
    ],
    model: Annotated[
        Path | None,
        typer.Option(
            "--model", help="FP32 export whose artifacts to package (default: the main job's)."
        ),
    ] = None,
    max_batch: Annotated[
        int,
        typer.Option(
            "--max-batch",
            help="max_batch_size for ONNX models (TensorRT: from the engine profile).",
            callback=PositiveInt,
        ),
    ] = C.DEFAULT_MAX_BATCH,
    static_batch: Annotated[
        int | None,
        typer.Option(
            "--static-batch",
            help="Serve the ONNX and OpenVINO models at exactly this batch, unbatched by Triton "
            "(max_batch_size 0, dims [N, C, H, W]); a TensorRT plan built with --static-batch "
            "is served so from its sidecar either way.",
            callback=PositiveInt,
        ),
    ] = None,
    instances: Annotated[
        int,
        typer.Option(
            "--instances", help="Instances per model (instance_group count).", callback=PositiveInt
        ),
    ] = 1,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads", help="ONNX Runtime intra-op threads per instance.", callback=PositiveInt
        ),
    ] = None,
    openvino: Annotated[
        bool, typer.Option("--openvino/--no-openvino", help="Also package OpenVINO IR models.")
    ] = True,
    triton_release: Annotated[
        str | None,
        typer.Option(
            "--triton-release",
            help="Target Triton release (YY.MM, trtllm-python-py3 container): TensorRT plans "
            "its TensorRT cannot run are refused.",
        ),
    ] = None,
    triton_tensorrt: Annotated[
        str | None,
        typer.Option(
            "--triton-tensorrt", help="The target server's TensorRT version (e.g. 10.13.3.9)."
        ),
    ] = None,
    work_dir: WorkDirOpt = Path(C.DEFAULT_WORK_DIR),
    force: ForceOpt = False,
) -> None:
    """Write a Triton Inference Server model repository from the built artifacts."""
    from alexnet_deploy import api
    from alexnet_deploy.serve.triton_config import ServingOptions
    from alexnet_deploy.serve.triton_tensorrt import server_tensorrt

    refuse_pixel_model(model, "package")
    server = server_tensorrt(triton_release, triton_tensorrt)
    options = ServingOptions(
        max_batch_size=max_batch, instances=instances, threads=threads, static_batch=static_batch
    )
    with status("preparing artifacts" if model is None else "packaging") as shown:
        repo = api.package(  # the repository path is checked before any export
            triton, model, options=options, openvino=openvino, server_tensorrt=server,
            work_dir=work_dir, force=force, progress=shown.update,
        )  # fmt: skip
    for m in repo.models:
        out_console.print(f"{m.name}: {m.kind} {m.precision} ({m.config_path})", highlight=False)
    for note in repo.notes:
        out_console.print(note, highlight=False, soft_wrap=True)
    for what, why in repo.skipped.items():
        # one line each: the command it names stays whole, to copy
        err_console.print(f"skipped {what}: {why}", highlight=False, markup=False, soft_wrap=True)
    out_console.print(
        f"repository: {repo.path} (start: tritonserver --model-repository {repo.path})",
        highlight=False,
    )
