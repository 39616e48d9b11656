"""Local response normalization as one operator, in PyTorch and in ONNX.

Meaning chosen (see docs/alexnet-variants.md): the 2012 paper's formula

    b[c] = a[c] / (k + alpha * sum_{c' in window(c)} a[c']^2) ** beta

with alpha applied to the raw sum of squares (paper: n=5, alpha=1e-4, beta=0.75, k=2).
PyTorch's ``nn.LocalResponseNorm`` and ONNX's ``LRN`` both divide alpha by the window size, so
the operator is called with ``alpha * size``; the outputs are the paper's.

PyTorch's exporters decompose ``nn.LocalResponseNorm`` into 10-20 primitive ops, which runtimes
cannot fuse back into their LRN kernels. So the module calls a custom op,
``alexnet_deploy::lrn``, and :data:`ONNX_TRANSLATIONS` tells the exporter (its supported
``custom_translation_table`` extension point) to emit ONNX's single ``LRN`` node for it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from onnxscript import opset18 as onnx_op
from torch import nn


@torch.library.custom_op("alexnet_deploy::lrn", mutates_args=())
def lrn(x: torch.Tensor, size: int, alpha: float, beta: float, bias: float) -> torch.Tensor:
    """ONNX ``LRN`` semantics: ``x / (bias + alpha / size * window_sum(x**2)) ** beta``."""
    return F.local_response_norm(x, size, alpha, beta, bias)


@lrn.register_fake
def _lrn_fake(x: torch.Tensor, size: int, alpha: float, beta: float, bias: float) -> torch.Tensor:
    return torch.empty_like(x)


def _lrn_setup_context(ctx, inputs, output) -> None:
    x, size, alpha, beta, bias = inputs
    ctx.save_for_backward(x)
    ctx.params = (size, alpha, beta, bias)


def _lrn_backward(ctx, grad_output: torch.Tensor):
    """Gradient by differentiating PyTorch's own LRN, so models with it train (tests do)."""
    (x,) = ctx.saved_tensors
    with torch.enable_grad():
        leaf = x.detach().requires_grad_(True)
        out = F.local_response_norm(leaf, *ctx.params)
        (grad,) = torch.autograd.grad(out, leaf, grad_output)
    return grad, None, None, None, None


lrn.register_autograd(_lrn_backward, setup_context=_lrn_setup_context)


def _lrn_to_onnx(x, size: int, alpha: float, beta: float, bias: float):
    return onnx_op.LRN(x, size=size, alpha=alpha, beta=beta, bias=bias)


ONNX_TRANSLATIONS = {torch.ops.alexnet_deploy.lrn.default: _lrn_to_onnx}


class PaperLRN(nn.Module):
    """Cross-channel LRN with the paper's constants and the paper's meaning of alpha."""

    def __init__(self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0):
        super().__init__()
        self.size = size
        self.alpha = alpha
        self.beta = beta
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.alexnet_deploy.lrn(x, self.size, self.alpha * self.size, self.beta, self.k)

    def extra_repr(self) -> str:
        return f"size={self.size}, alpha={self.alpha} (paper meaning), beta={self.beta}, k={self.k}"
