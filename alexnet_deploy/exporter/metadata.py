"""What an exported model says about itself: ONNX metadata_props and the JSON manifest."""

from __future__ import annotations

import json
from pathlib import Path

from alexnet_deploy import constants as C
from alexnet_deploy.exporter.config import ExportConfig
from alexnet_deploy.models.variants import Variant
from alexnet_deploy.models.weights import WeightsInfo

PREFIX = C.METADATA_PREFIX


def export_metadata(variant: Variant, weights: WeightsInfo, config: ExportConfig) -> dict[str, str]:
    """The key/value pairs stored in the ONNX file (strings, as ONNX metadata_props require)."""
    import onnx
    import torch

    from alexnet_deploy import __version__

    pre = variant.preprocessing
    values = {
        "variant": variant.name,
        "input_size": str(pre.crop_size),
        "resize_size": str(pre.resize_size),
        "mean": json.dumps(list(pre.mean)),
        "std": json.dumps(list(pre.std)),
        "num_classes": str(variant.num_classes),
        "weights": "trained" if weights.trained else "untrained",
        "weights_sha256": weights.sha256,
        "seed": "" if weights.seed is None else str(weights.seed),
        "opset": str(config.opset),
        "outputs": ",".join(config.output_names),
        "precision": "fp32",
        "torch_version": torch.__version__,
        "onnx_version": onnx.__version__,
        "tool_version": __version__,
    }
    if variant.metadata:  # a user's model (export --from): its card and origin, no variant
        del values["variant"]
        values.update(variant.metadata)
    return {PREFIX + key: value for key, value in values.items()}


def read_metadata(path: str | Path) -> dict[str, str]:
    """Our metadata of an ONNX file (prefix stripped); empty when the file is not one of ours."""
    from alexnet_deploy.onnx_model import read_artifact

    return read_artifact(path).metadata


def manifest_path(model_path: str | Path) -> Path:
    """The manifest lives beside the model: ``alexnet.onnx`` -> ``alexnet.onnx.json``."""
    model_path = Path(model_path)
    return model_path.with_name(model_path.name + ".json")
