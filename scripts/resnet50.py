"""ResNet-50 in plain PyTorch, torchvision's layout (v1.5: the stride on the 3x3 convolution),
for the any-model evidence (issue #23): ``alexnet-deploy export --from
scripts/resnet50.py:resnet50``. torchvision does not import beside this project's torch, so the
architecture is written out here; its parameter count is torchvision's (25,557,032) and its
state-dict keys are torchvision's, so torchvision's checkpoints load with ``--weights``.
"""

from __future__ import annotations

from torch import Tensor, nn

NUM_PARAMS = 25_557_032  # torchvision.models.resnet50().parameters(), 1000 classes
LAYERS = (3, 4, 6, 3)  # bottleneck blocks per stage
EXPANSION = 4


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (the stride), 1x1 expand, each with BatchNorm; a residual add."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * EXPANSION, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * EXPANSION)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = None
        if stride != 1 or inplanes != planes * EXPANSION:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes * EXPANSION, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * EXPANSION),
            )

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet50(nn.Module):
    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inplanes = 64
        for index, (blocks, planes) in enumerate(zip(LAYERS, (64, 128, 256, 512), strict=True)):
            stride = 1 if index == 0 else 2
            stage = []
            for block in range(blocks):
                stage.append(Bottleneck(inplanes, planes, stride if block == 0 else 1))
                inplanes = planes * EXPANSION
            setattr(self, f"layer{index + 1}", nn.Sequential(*stage))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * EXPANSION, num_classes)
        for module in self.modules():  # torchvision's initialization
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.constant_(module.weight, 1)
                nn.init.constant_(module.bias, 0)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


def resnet50() -> ResNet50:
    """The factory ``export --from`` calls: ResNet-50 with 1000 classes, its size checked."""
    model = ResNet50()
    count = sum(p.numel() for p in model.parameters())
    if count != NUM_PARAMS:
        raise ValueError(f"ResNet-50 has {count:,} parameters, torchvision's has {NUM_PARAMS:,}")
    return model
