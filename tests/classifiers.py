"""Three more trained test networks, not AlexNet, for the any-classifier pipeline tests.

Plain PyTorch (torchvision does not import beside torch 2.13), at reduced width so that each
trains in seconds on the digits PNG files of ``tests/digits.py`` (36x36 grayscale scans,
decoded by Pillow, resized and center-cropped to 32x32):

- ``resnet``: a ResNet-style network: BatchNorm, residual adds (identity and 1x1 projection
  shortcuts), global average pooling;
- ``mobilenet``: a MobileNetV3-style one: inverted residuals with depthwise convolutions,
  squeeze-excitation gated by HardSigmoid, HardSwish, global average pooling;
- ``vit``: a small vision transformer: 4x4 patch embedding, a class token, two pre-norm
  transformer blocks (LayerNorm, softmax attention, GELU MLP).

Each is seeded: the same weights every session. The factories take no arguments, so
``alexnet-deploy export --from tests/classifiers.py:resnet`` builds the same network.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from alexnet_deploy.calib.images import load_rgb, preprocess
from alexnet_deploy.models.variants import IMAGENET_MEAN, IMAGENET_STD, Preprocessing

SEED = 0
CLASSES = 10
SIZE = 32  # the crop the networks take; the PNG files are 36x36 (resize 36, center crop 32)
INPUT, OUTPUT = "x", "logits"  # not the names alexnet-deploy's own export uses


# --- ResNet-style --------------------------------------------------------------------------


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers and a residual add; a 1x1 conv-BN projection where the shape
    changes."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


class TinyResNet(nn.Module):
    def __init__(self, num_classes: int = CLASSES) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU()
        )
        self.layers = nn.Sequential(
            BasicBlock(16, 16), BasicBlock(16, 32, 2), BasicBlock(32, 48, 2)
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(48, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.layers(self.stem(x))), 1))


# --- MobileNetV3-style ---------------------------------------------------------------------


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, squeezed: int) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeezed, 1)
        self.fc2 = nn.Conv2d(squeezed, channels, 1)
        self.gate = nn.Hardsigmoid()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(self.fc2(torch.relu(self.fc1(self.pool(x)))))


def _conv_bn(cin: int, cout: int, kernel: int, stride: int, groups: int, act: nn.Module | None):
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    return nn.Sequential(*layers, *([act] if act is not None else []))


class InvertedResidual(nn.Module):
    """1x1 expand, depthwise kxk, optional squeeze-excitation, 1x1 project; a residual add
    where the shape allows."""

    def __init__(
        self, cin: int, expand: int, cout: int, kernel: int, se: bool, hswish: bool, stride: int
    ) -> None:
        super().__init__()
        act = nn.Hardswish if hswish else nn.ReLU
        self.expand = _conv_bn(cin, expand, 1, 1, 1, act())
        self.depthwise = _conv_bn(expand, expand, kernel, stride, expand, act())
        self.se: nn.Module = SqueezeExcite(expand, max(8, expand // 4)) if se else nn.Identity()
        self.project = _conv_bn(expand, cout, 1, 1, 1, None)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.depthwise(self.expand(x))))
        return x + y if self.residual else y


class TinyMobileNetV3(nn.Module):
    def __init__(self, num_classes: int = CLASSES) -> None:
        super().__init__()
        self.stem = _conv_bn(3, 16, 3, 1, 1, nn.Hardswish())
        self.blocks = nn.Sequential(
            InvertedResidual(16, 24, 16, 3, se=True, hswish=False, stride=1),
            InvertedResidual(16, 32, 24, 3, se=False, hswish=False, stride=2),
            InvertedResidual(24, 48, 24, 5, se=True, hswish=True, stride=1),
            InvertedResidual(24, 64, 40, 3, se=True, hswish=True, stride=2),
        )
        self.head = _conv_bn(40, 64, 1, 1, 1, nn.Hardswish())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(64, 96), nn.Hardswish(), nn.Dropout(0.1), nn.Linear(96, num_classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.head(self.blocks(self.stem(x))))
        return self.classifier(torch.flatten(x, 1))


# --- ViT -----------------------------------------------------------------------------------


class Attention(nn.Module):
    """Multi-head softmax attention written out (MatMul, Softmax), as most exports show it."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.heads, dim // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        attention = torch.softmax((q @ k.transpose(-2, -1)) * self.scale, dim=-1)
        return self.proj((attention @ v).transpose(1, 2).reshape(batch, tokens, dim))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attention = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TinyViT(nn.Module):
    def __init__(self, num_classes: int = CLASSES, dim: int = 64, patch: int = 4) -> None:
        super().__init__()
        tokens = (SIZE // patch) ** 2
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, tokens + 1, dim) * 0.02)
        self.blocks = nn.Sequential(Block(dim, 4, dim * 2), Block(dim, 4, dim * 2))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        return self.head(self.norm(self.blocks(x))[:, 0])


# --- the networks as declared data ----------------------------------------------------------


def _seeded(cls: type[nn.Module]) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        return cls().eval()


def resnet() -> nn.Module:
    return _seeded(TinyResNet)


def mobilenet() -> nn.Module:
    return _seeded(TinyMobileNetV3)


def vit() -> nn.Module:
    return _seeded(TinyViT)


HALF = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class Network:
    """One test network: its factory (a name in this file), its preprocessing (the model card
    its import is given) and how it trains."""

    name: str
    factory: str
    preprocessing: Preprocessing
    epochs: int
    lr: float

    def build(self) -> nn.Module:
        return globals()[self.factory]()

    def card_flags(self) -> tuple[str, ...]:
        """The card as ``import`` / ``export --from`` / ``calibrate`` flags."""
        pre = self.preprocessing
        return (
            "--input-size", str(pre.crop_size), "--resize-size", str(pre.resize_size),
            "--mean", ",".join(map(str, pre.mean)), "--std", ",".join(map(str, pre.std)),
        )  # fmt: skip


NETWORKS = {
    n.name: n
    for n in (
        # ImageNet's mean/std: the card's constants are used, not assumed to be 0.5
        Network("resnet", "resnet", Preprocessing(36, SIZE, IMAGENET_MEAN, IMAGENET_STD), 8, 3e-3),
        Network("mobilenet", "mobilenet", Preprocessing(36, SIZE, HALF, HALF), 8, 4e-3),
        Network("vit", "vit", Preprocessing(36, SIZE, HALF, HALF), 14, 1e-3),
    )
}


def arrays(folder: Path, pre: Preprocessing) -> tuple[np.ndarray, np.ndarray]:
    """A class-per-folder PNG tree as preprocessed images and labels (Pillow decode)."""
    files = sorted(folder.rglob("*.png"))
    images = np.stack([preprocess(load_rgb(f), pre) for f in files])
    return images, np.array([int(f.parent.name) for f in files])


def train(network: Network, images: np.ndarray, labels: np.ndarray) -> nn.Module:
    """Adam, cross-entropy, batches of 64, seeded; the model back in eval mode."""
    model = network.build()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        optimizer = torch.optim.AdamW(model.parameters(), lr=network.lr, weight_decay=1e-4)
        x, y = torch.from_numpy(images), torch.from_numpy(labels)
        generator = torch.Generator().manual_seed(SEED)
        model.train()
        for _ in range(network.epochs):
            for index in torch.randperm(len(x), generator=generator).split(64):
                optimizer.zero_grad()
                nn.functional.cross_entropy(model(x[index]), y[index]).backward()
                optimizer.step()
    return model.eval()


def accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    with torch.no_grad():
        return float((model(torch.from_numpy(images)).argmax(1).numpy() == labels).mean())


def export_onnx(model: nn.Module, path: Path, opset: int = 17) -> Path:
    """What a user does: ``torch.onnx.export`` with a dynamic batch axis, no metadata."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            model, (torch.zeros(2, 3, SIZE, SIZE),), str(path), input_names=[INPUT],
            output_names=[OUTPUT], dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}},
            opset_version=opset, dynamo=False,
        )  # fmt: skip
    return path
