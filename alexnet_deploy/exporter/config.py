"""What an export produces, declared as data: tensor names, the dynamic axis, opset, tolerance."""

from __future__ import annotations

from dataclasses import dataclass

from alexnet_deploy import constants as C
from alexnet_deploy.errors import UsageError


@dataclass(frozen=True)
class ExportConfig:
    opset: int = C.DEFAULT_OPSET
    softmax: bool = False
    # prepend decode-to-tensor preprocessing: the input becomes uint8 NHWC pixels of any size
    preprocess: bool = False
    atol: float = C.FP32_ATOL
    rtol: float = C.FP32_RTOL
    validation_batch_sizes: tuple[int, ...] = C.VALIDATION_BATCH_SIZES

    input_name: str = C.INPUT_NAME
    logits_name: str = C.LOGITS_NAME
    probabilities_name: str = C.PROBABILITIES_NAME
    batch_axis: str = C.BATCH_AXIS_NAME

    def __post_init__(self) -> None:
        if not C.MIN_OPSET <= self.opset <= C.MAX_OPSET:
            raise UsageError(
                f"opset {self.opset} is out of range",
                hint=f"--opset takes {C.MIN_OPSET} to {C.MAX_OPSET} (default {C.DEFAULT_OPSET})",
            )
        if self.preprocess and self.opset < C.PIXEL_GRAPH_MIN_OPSET:
            raise UsageError(
                f"--preprocess needs opset {C.PIXEL_GRAPH_MIN_OPSET} or later (Resize with "
                f"antialias, CenterCropPad); --opset is {self.opset}",
                hint=f"drop --opset (default {C.DEFAULT_OPSET}) or raise it",
            )

    @property
    def output_names(self) -> tuple[str, ...]:
        if self.softmax:
            return (self.logits_name, self.probabilities_name)
        return (self.logits_name,)
