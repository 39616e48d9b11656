"""Tiny foreign ONNX models (not alexnet-deploy exports, no metadata) for the odd-model tests:
a small CNN exported by PyTorch with a dynamic batch, a fixed batch, two inputs or an NHWC
input, 16x16 pixels, in well under a second each (the TorchScript exporter: no tracing of the
whole program), plus the .npy arrays and PNG files to feed them."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

SIZE = 16  # input height and width
INPUT = "x"


class TinyCnn(nn.Module):
    """conv -> ReLU -> global average -> linear; ``nhwc`` takes [batch, H, W, 3]."""

    def __init__(self, classes: int = 10, nhwc: bool = False) -> None:
        super().__init__()
        self.nhwc = nhwc
        self.conv = nn.Conv2d(3, 8, kernel_size=3, padding=1)
        self.fc = nn.Linear(8, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.nhwc:
            x = x.permute(0, 3, 1, 2)
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


class TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = TinyCnn()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.inner(x + y)


def export(
    path: Path,
    *,
    batch: int | None = None,
    classes: int = 10,
    nhwc: bool = False,
    two_inputs: bool = False,
    seed: int = 0,
    opset: int = 17,
) -> Path:
    """Export a tiny CNN to ``path``: ``batch`` None gives a dynamic batch axis, an int a
    fixed one."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        module = (TwoInputs() if two_inputs else TinyCnn(classes, nhwc)).eval()
    shape = (batch or 2, SIZE, SIZE, 3) if nhwc else (batch or 2, 3, SIZE, SIZE)
    names = [INPUT, "y"] if two_inputs else [INPUT]
    example = tuple(torch.zeros(shape) for _ in names)
    dynamic = None if batch else {n: {0: "batch"} for n in [*names, "logits"]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            module, example, str(path), input_names=names, output_names=["logits"],
            dynamic_axes=dynamic, opset_version=opset, dynamo=False,
        )  # fmt: skip
    return path


def pixel_model(path: Path) -> Path:
    """A tiny CNN that takes decoded pixels, as 'export --preprocess' writes one: uint8
    [batch, height, width, 3] in, the resize, crop and normalization in the graph."""
    import onnx

    from alexnet_deploy.exporter.pixels import with_pixel_input
    from alexnet_deploy.models.variants import Preprocessing

    export(path, opset=18)
    pre = Preprocessing(SIZE, SIZE, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    onnx.save(with_pixel_input(onnx.load(str(path)), pre), str(path))
    return path


def images_npy(path: Path, count: int = 24, *, seed: int = 0, nhwc: bool = False) -> Path:
    """``count`` preprocessed float32 samples, NCHW (or NHWC) at SIZE."""
    shape = (count, SIZE, SIZE, 3) if nhwc else (count, 3, SIZE, SIZE)
    np.save(path, np.random.default_rng(seed).standard_normal(shape).astype(np.float32))
    return path


def png_folder(folder: Path, count: int = 12, *, seed: int = 0) -> Path:
    """``count`` random RGB PNG files of SIZE x SIZE pixels."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        pixels = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
        Image.fromarray(pixels, mode="RGB").save(folder / f"image-{i:02d}.png")
    return folder


# The explicit preprocessing a foreign model needs with image folders (no metadata).
PREPROCESSING_FLAGS = (
    "--input-size", str(SIZE), "--resize-size", str(SIZE),
    "--mean", "0.5,0.5,0.5", "--std", "0.25,0.25,0.25",
)  # fmt: skip
