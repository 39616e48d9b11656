"""The export stage: variant + weights -> validated ONNX file + manifest, written atomically."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from alexnet_deploy.errors import UsageError
from alexnet_deploy.exporter.config import ExportConfig
from alexnet_deploy.exporter.convert import onnx_from_torch
from alexnet_deploy.exporter.metadata import export_metadata, manifest_path
from alexnet_deploy.exporter.pixels import PIXELS_ANY_SIZE, bake_preprocessing
from alexnet_deploy.exporter.validate import BatchComparison, comparisons_as_dicts, validate_export
from alexnet_deploy.fileio import (
    atomic_path,
    require_free_space,
    sha256_file,
    write_json_atomic,
)
from alexnet_deploy.models.variants import Variant
from alexnet_deploy.models.weights import WeightsInfo, build_model
from alexnet_deploy.outputs import check_outputs
from alexnet_deploy.progress import Progress


@dataclass
class ExportResult:
    path: Path
    manifest: Path
    sha256: str
    size_bytes: int
    weights: WeightsInfo
    export_seconds: float
    validate_seconds: float
    comparisons: list[BatchComparison] = field(default_factory=list)
    pixels_check: dict | None = None  # export --preprocess: the graph's preprocessing vs host
    model_name: str = ""  # what every later output calls it (ArtifactInfo.model_name)


def export_onnx(
    variant: Variant,
    out: Path,
    *,
    weights: Path | None = None,
    seed: int,
    config: ExportConfig | None = None,
    force: bool = False,
    progress: Progress = lambda _msg: None,
) -> ExportResult:
    """Build ``variant`` (from ``weights`` or ``seed``), export it to ``out`` and validate it
    against PyTorch. ``out`` appears only if every check passes; an existing ``out`` is replaced
    only with ``force`` and only by a validated file."""
    config = config or ExportConfig()
    out = Path(out)
    if config.preprocess and not variant.preprocessing.pixels_as_exported:
        raise UsageError(
            f"--preprocess bakes a center crop, a bilinear resize and RGB pixels scaled to "
            f"[0, 1] into the graph; the card of {variant.model_name} says otherwise "
            f"({variant.preprocessing})",
            hint="export without --preprocess and preprocess on the host",
        )
    check_outputs("export", {"-o": out}, {"checkpoint": weights}, force=force)
    progress("building model")
    model, info = build_model(variant, weights, seed)
    require_free_space(  # the weights, plus the graph's few kilobytes
        out.parent,
        sum(p.numel() * p.element_size() for p in model.parameters()) + (1 << 20),
        what="the ONNX model",
    )
    metadata = export_metadata(variant, info, config)
    with atomic_path(out, replace=force) as tmp:
        progress(f"exporting to ONNX (opset {config.opset})")
        start = time.perf_counter()
        onnx_from_torch(model, variant, config, tmp, metadata)
        export_seconds = time.perf_counter() - start
        progress("validating against PyTorch")
        start = time.perf_counter()
        comparisons = validate_export(tmp, model, variant, config, seed)
        pixels = None
        if config.preprocess:
            progress("baking the preprocessing into the graph (--preprocess) and checking it")
            pixels = bake_preprocessing(tmp, variant.preprocessing)
        validate_seconds = time.perf_counter() - start
        digest = sha256_file(tmp)
        size = tmp.stat().st_size
    manifest = {
        "model": out.name,
        "sha256": digest,
        "size_bytes": size,
        "metadata": {key.split(".", 1)[1]: value for key, value in metadata.items()},
        "validation": {
            "reference": "PyTorch eager FP32",
            "atol": config.atol,
            "rtol": config.rtol,
            "seed": seed,
            "batches": comparisons_as_dicts(comparisons),
        },
    }
    if pixels is not None:
        manifest["metadata"]["input_layout"] = PIXELS_ANY_SIZE
        manifest["validation"]["preprocessing_in_graph"] = pixels
    manifest_file = write_json_atomic(manifest_path(out), manifest)
    return ExportResult(
        path=out,
        manifest=manifest_file,
        sha256=digest,
        size_bytes=size,
        weights=info,
        export_seconds=export_seconds,
        validate_seconds=validate_seconds,
        comparisons=comparisons,
        pixels_check=pixels,
        model_name=variant.model_name,
    )
