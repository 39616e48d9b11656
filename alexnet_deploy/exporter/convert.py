"""PyTorch module -> ONNX file, with the dynamic batch axis, fixed tensor names and one LRN op."""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

from alexnet_deploy.exporter.config import ExportConfig
from alexnet_deploy.models.variants import Variant


def _with_softmax(model):
    import torch
    from torch import nn

    class LogitsAndProbabilities(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, x: torch.Tensor):
            logits = self.inner(x)
            return logits, torch.softmax(logits, dim=1)

    return LogitsAndProbabilities(model).eval()


@contextlib.contextmanager
def _quiet_exporter():
    """The exporter logs progress and version-conversion notices we report ourselves."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def onnx_from_torch(
    model, variant: Variant, config: ExportConfig, path: Path, metadata: dict[str, str]
) -> Path:
    """Export ``model`` to ``path`` with ``config``'s names and opset and ``metadata`` attached."""
    import torch

    from alexnet_deploy.models.layers import ONNX_TRANSLATIONS

    module = _with_softmax(model) if config.softmax else model
    example = torch.zeros(2, *variant.input_shape)
    batch = torch.export.Dim(config.batch_axis, min=1)
    with _quiet_exporter(), contextlib.redirect_stdout(io.StringIO()):
        program = torch.onnx.export(
            module,
            (example,),
            input_names=[config.input_name],
            output_names=list(config.output_names),
            dynamic_shapes=({0: batch},),
            opset_version=config.opset,
            custom_translation_table=ONNX_TRANSLATIONS,
            dynamo=True,
            verbose=False,
        )
        program.model.metadata_props.update(metadata)
        program.save(str(path))
    return path
