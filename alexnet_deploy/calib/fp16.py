"""FP32 ONNX -> FP16 ONNX, with float32 inputs and outputs kept.

Route: onnxconverter-common's ``convert_float_to_float16`` (a light dependency). NVIDIA
ModelOpt's ONNX autocast is the route NVIDIA documents for TensorRT 11, but it is a ~2 GB
install and, for a graph of plain Conv/Gemm/ReLU/MaxPool/LRN, makes the same decisions;
measured fidelity is in docs/calibration.md. Ops in ``FP16_KEEP_FP32_OPS`` stay FP32.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

from alexnet_deploy import constants as C


def fp16_model(model, keep_fp32_ops: tuple[str, ...] = C.FP16_KEEP_FP32_OPS):
    """Return an FP16 copy of ``model`` (an onnx.ModelProto)."""
    from onnxconverter_common import float16

    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")  # per-initializer "value truncated" notices
        return float16.convert_float_to_float16(
            model, keep_io_types=True, op_block_list=list(keep_fp32_ops), disable_shape_infer=False
        )


def write_fp16(model, out: Path) -> Path:
    import onnx

    onnx.save(fp16_model(model), str(out))
    return out
