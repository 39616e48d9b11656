"""A *trained* AlexNet-shaped network for fidelity tests.

Untrained weights give near-constant logits, so INT8/FP16 fidelity on them means nothing. This
module trains a reduced-width network with AlexNet's layer types (conv 11->5->3x3 stack,
ReLU, overlapping max-pool, LRN, grouped convs, three fully connected layers) on scikit-learn's
bundled handwritten digits (1,797 real 8x8 scans, BSD licence), upscaled to 36x36 and written
as grayscale PNG files in an ImageFolder layout, so the data goes through the real Pillow
decode and preprocessing path. Seeded: the same data, weights and ONNX file every session.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from alexnet_deploy.calib.images import load_rgb, preprocess
from alexnet_deploy.exporter.pipeline import export_onnx
from alexnet_deploy.models.layers import PaperLRN
from alexnet_deploy.models.variants import Preprocessing, Variant

PNG_SIZE = 36
TRAIN_COUNT = 1000
SEED = 0


class TinyAlexNet(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, kernel_size=5, stride=1, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            PaperLRN(),
            nn.Conv2d(16, 32, kernel_size=3, padding=1, groups=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            PaperLRN(),
            nn.Conv2d(32, 48, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(48, 48, kernel_size=3, padding=1, groups=2),
            nn.ReLU(inplace=True),
            nn.Conv2d(48, 32, kernel_size=3, padding=1, groups=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.classifier = nn.Sequential(
            nn.Dropout(0.2),
            nn.Linear(32 * 3 * 3, 128),
            nn.ReLU(inplace=True),
            nn.Dropout(0.2),
            nn.Linear(128, 128),
            nn.ReLU(inplace=True),
            nn.Linear(128, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.features(x), 1))


DIGITS = Variant(
    name="digits-tiny",
    description="reduced-width AlexNet trained on scikit-learn digits (tests only)",
    factory=TinyAlexNet,
    preprocessing=Preprocessing(PNG_SIZE, 32, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)),
    num_params=sum(p.numel() for p in TinyAlexNet().parameters()),
    num_classes=10,
)


def write_digit_pngs(folder: Path, images: np.ndarray, labels: np.ndarray, offset: int) -> None:
    from PIL import Image

    for i, (pixels, label) in enumerate(zip(images, labels, strict=True)):
        image = Image.fromarray((pixels * (255 / 16)).astype(np.uint8), mode="L")
        image = image.resize((PNG_SIZE, PNG_SIZE), Image.Resampling.BILINEAR)
        target = folder / str(int(label))
        target.mkdir(parents=True, exist_ok=True)
        image.save(target / f"digit-{offset + i:04d}.png")


def _arrays(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    files = sorted(folder.rglob("*.png"))
    images = np.stack([preprocess(load_rgb(f), DIGITS.preprocessing) for f in files])
    return images, np.array([int(f.parent.name) for f in files])


def train(images: np.ndarray, labels: np.ndarray, epochs: int = 12) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = TinyAlexNet()
        optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
        x, y = torch.from_numpy(images), torch.from_numpy(labels)
        generator = torch.Generator().manual_seed(SEED)
        model.train()
        for _ in range(epochs):
            for index in torch.randperm(len(x), generator=generator).split(64):
                optimizer.zero_grad()
                nn.functional.cross_entropy(model(x[index]), y[index]).backward()
                optimizer.step()
    return model.eval()


def build(root: Path) -> dict:
    """Write train/held-out PNG folders, train, save the checkpoint and export it to ONNX."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.default_rng(SEED).permutation(len(digits.images))
    train_idx, test_idx = order[:TRAIN_COUNT], order[TRAIN_COUNT:]
    write_digit_pngs(root / "train", digits.images[train_idx], digits.target[train_idx], 0)
    write_digit_pngs(
        root / "heldout", digits.images[test_idx], digits.target[test_idx], TRAIN_COUNT
    )
    model = train(*_arrays(root / "train"))
    checkpoint = root / "digits-tiny.pth"
    torch.save(model.state_dict(), checkpoint)
    result = export_onnx(DIGITS, root / "digits-tiny.onnx", weights=checkpoint, seed=SEED)
    test_images, test_labels = _arrays(root / "heldout")
    with torch.no_grad():
        accuracy = float(
            (model(torch.from_numpy(test_images)).argmax(1).numpy() == test_labels).mean()
        )
    return {
        "root": root,
        "onnx": result.path,
        "checkpoint": checkpoint,
        "model": model,
        "train_dir": root / "train",
        "heldout_dir": root / "heldout",
        "accuracy": accuracy,
        "heldout_images": test_images,
        "heldout_labels": test_labels,
    }
