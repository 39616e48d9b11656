"""Check an exported ONNX file: structure, then outputs against PyTorch on seeded inputs.

A wrong tensor name or shape is fatal (:class:`ShapeError`); a numeric difference beyond the
tolerance raises :class:`ToleranceError` after the figures are computed, so the caller can show
them either way.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from alexnet_deploy.errors import AlexnetDeployError, ToleranceError
from alexnet_deploy.exporter.config import ExportConfig
from alexnet_deploy.inputs import seeded_images
from alexnet_deploy.models.variants import Variant
from alexnet_deploy.onnx_model import info_from_proto


class ShapeError(AlexnetDeployError):
    """The ONNX graph's inputs or outputs are not the declared ones."""


@dataclass(frozen=True)
class BatchComparison:
    batch: int
    max_abs_diff: float
    max_rel_diff: float  # max abs diff / max |reference logit|: element-wise ratios explode near 0
    top1_agreement: float
    within_tolerance: bool


def check_structure(path: Path, variant: Variant, config: ExportConfig) -> None:
    """onnx.checker, shape inference, and the declared names, dtypes and dims."""
    import onnx

    onnx.checker.check_model(str(path), full_check=True)
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)), strict_mode=True)
    info = info_from_proto(path, model)
    expected_in = {config.input_name: [config.batch_axis, *variant.input_shape]}
    expected_out = {name: [config.batch_axis, variant.num_classes] for name in config.output_names}
    for kind, specs, expected in (
        ("input", info.inputs, expected_in),
        ("output", info.outputs, expected_out),
    ):
        actual = {spec.name: spec for spec in specs}
        if sorted(actual) != sorted(expected):
            raise ShapeError(f"exported {kind}s are {sorted(actual)}, expected {sorted(expected)}")
        for name, shape in expected.items():
            if actual[name].dtype != "float32":
                raise ShapeError(f"{kind} {name!r} is not float32")
            if list(actual[name].dims) != shape:
                raise ShapeError(
                    f"{kind} {name!r} has dims {list(actual[name].dims)}, expected {shape}"
                )


def compare_with_torch(
    path: Path, model, variant: Variant, config: ExportConfig, seed: int
) -> list[BatchComparison]:
    """Run ONNX Runtime and PyTorch on the same seeded batches; compare the logits."""
    import onnxruntime as ort
    import torch

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    results = []
    for batch in config.validation_batch_sizes:
        images = seeded_images(variant, batch, seed)
        with torch.no_grad():
            expected = model(torch.from_numpy(images)).numpy()
        actual = session.run([config.logits_name], {config.input_name: images})[0]
        if actual.shape != expected.shape:
            raise ShapeError(f"batch {batch}: ONNX logits {actual.shape}, PyTorch {expected.shape}")
        diff = np.abs(actual - expected)
        scale = float(np.abs(expected).max())
        tolerance = config.atol + config.rtol * scale
        results.append(
            BatchComparison(
                batch=batch,
                max_abs_diff=float(diff.max()),
                max_rel_diff=float(diff.max() / scale) if scale > 0 else float(diff.max()),
                top1_agreement=float(np.mean(actual.argmax(1) == expected.argmax(1))),
                within_tolerance=bool(diff.max() <= tolerance),
            )
        )
    return results


def validate_export(
    path: Path, model, variant: Variant, config: ExportConfig, seed: int
) -> list[BatchComparison]:
    """Structure checks then numeric comparison; raises on any failure."""
    check_structure(path, variant, config)
    results = compare_with_torch(path, model, variant, config, seed)
    failed = [r for r in results if not r.within_tolerance]
    if failed:
        worst = max(failed, key=lambda r: r.max_abs_diff)
        raise ToleranceError(
            f"ONNX output differs from PyTorch beyond atol={config.atol}, rtol={config.rtol}: "
            f"batch {worst.batch} max abs diff {worst.max_abs_diff:.3g}",
            hint="rerun with --debug and report it; try another --opset",
        )
    return results


def comparisons_as_dicts(results: list[BatchComparison]) -> list[dict]:
    return [asdict(r) for r in results]
