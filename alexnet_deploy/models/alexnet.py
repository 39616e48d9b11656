"""The two AlexNet networks, defined here because torchvision does not import beside torch 2.13.

State-dict keys follow torchvision (``features.{i}.*``, ``classifier.{i}.*``), so a checkpoint
saved from ``torchvision.models.alexnet`` loads unchanged into :class:`AlexNetTorchvision`.
"""

from __future__ import annotations

import torch
from torch import nn

from alexnet_deploy.models.layers import PaperLRN

LRN_AFTER_POOL = "relu-pool-lrn"
LRN_BEFORE_POOL = "relu-lrn-pool"


class AlexNetTorchvision(nn.Module):
    """torchvision's AlexNet ("one weird trick" revision): 61,100,840 parameters at 1000 classes."""

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = self.avgpool(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)


class AlexNetPaper(nn.Module):
    """The 2012 network: 96/256/384/384/256 filters, LRN, overlapping pooling, groups=2 on
    conv2/conv4/conv5, 227x227 input, 60,965,224 parameters at 1000 classes.

    ``lrn_order`` follows the source text by default (ReLU -> max-pool -> LRN); the 2012 paper
    itself normalizes before pooling (``relu-lrn-pool``). Same shapes, different numbers.
    """

    def __init__(
        self, num_classes: int = 1000, dropout: float = 0.5, lrn_order: str = LRN_AFTER_POOL
    ) -> None:
        super().__init__()
        if lrn_order not in (LRN_AFTER_POOL, LRN_BEFORE_POOL):
            raise ValueError(f"lrn_order must be {LRN_AFTER_POOL!r} or {LRN_BEFORE_POOL!r}")
        self.lrn_order = lrn_order

        def pool_and_norm() -> list[nn.Module]:
            pool, norm = nn.MaxPool2d(kernel_size=3, stride=2), PaperLRN()
            return [pool, norm] if lrn_order == LRN_AFTER_POOL else [norm, pool]

        self.features = nn.Sequential(
            nn.Conv2d(3, 96, kernel_size=11, stride=4, padding=0),
            nn.ReLU(inplace=True),
            *pool_and_norm(),
            nn.Conv2d(96, 256, kernel_size=5, padding=2, groups=2),
            nn.ReLU(inplace=True),
            *pool_and_norm(),
            nn.Conv2d(256, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 384, kernel_size=3, padding=1, groups=2),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1, groups=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.classifier = nn.Sequential(
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(p=dropout),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = torch.flatten(x, 1)
        return self.classifier(x)
