"""MobileNetV3-Large in plain PyTorch, torchvision's layout, for the any-model evidence (issue
#23): ``alexnet-deploy export --from scripts/mobilenetv3_large.py:mobilenet_v3_large``.
torchvision does not import beside this project's torch, so the architecture is written out
here: depthwise convolutions, squeeze-excitation (ReLU then Hardsigmoid), Hardswish, folded
BatchNorm after export; its parameter count is torchvision's (5,483,032) and its state-dict
keys are torchvision's, so torchvision's checkpoints load with ``--weights``.
"""

from __future__ import annotations

from torch import Tensor, nn

NUM_PARAMS = 5_483_032  # torchvision.models.mobilenet_v3_large().parameters(), 1000 classes
LAST_CHANNEL = 1280
BN_EPS, BN_MOMENTUM = 0.001, 0.01
# torchvision's table: input, kernel, expanded, output, squeeze-excitation, activation
# ("RE" ReLU, "HS" Hardswish), stride
BLOCKS = (
    (16, 3, 16, 16, False, "RE", 1),
    (16, 3, 64, 24, False, "RE", 2),
    (24, 3, 72, 24, False, "RE", 1),
    (24, 5, 72, 40, True, "RE", 2),
    (40, 5, 120, 40, True, "RE", 1),
    (40, 5, 120, 40, True, "RE", 1),
    (40, 3, 240, 80, False, "HS", 2),
    (80, 3, 200, 80, False, "HS", 1),
    (80, 3, 184, 80, False, "HS", 1),
    (80, 3, 184, 80, False, "HS", 1),
    (80, 3, 480, 112, True, "HS", 1),
    (112, 3, 672, 112, True, "HS", 1),
    (112, 5, 672, 160, True, "HS", 2),
    (160, 5, 960, 160, True, "HS", 1),
    (160, 5, 960, 160, True, "HS", 1),
)


def make_divisible(value: float, divisor: int = 8) -> int:
    """torchvision's rounding of a channel count to a multiple of 8 (never down by over 10%)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class ConvBNActivation(nn.Sequential):
    def __init__(self, cin, cout, kernel, stride=1, groups=1, activation=None) -> None:
        layers = [
            nn.Conv2d(cin, cout, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
            nn.BatchNorm2d(cout, eps=BN_EPS, momentum=BN_MOMENTUM),
        ]
        if activation is not None:
            layers.append(activation(inplace=True))
        super().__init__(*layers)


class SqueezeExcitation(nn.Module):
    def __init__(self, channels: int, squeezed: int) -> None:
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeezed, 1)
        self.fc2 = nn.Conv2d(squeezed, channels, 1)
        self.activation = nn.ReLU()
        self.scale_activation = nn.Hardsigmoid()

    def forward(self, x: Tensor) -> Tensor:
        scale = self.fc2(self.activation(self.fc1(self.avgpool(x))))
        return x * self.scale_activation(scale)


class InvertedResidual(nn.Module):
    def __init__(self, cin, kernel, expanded, cout, use_se, activation, stride) -> None:
        super().__init__()
        act = nn.Hardswish if activation == "HS" else nn.ReLU
        self.use_res_connect = stride == 1 and cin == cout
        layers: list[nn.Module] = []
        if expanded != cin:
            layers.append(ConvBNActivation(cin, expanded, 1, activation=act))
        layers.append(ConvBNActivation(expanded, expanded, kernel, stride, expanded, act))
        if use_se:
            layers.append(SqueezeExcitation(expanded, make_divisible(expanded // 4)))
        layers.append(ConvBNActivation(expanded, cout, 1))
        self.block = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        out = self.block(x)
        return out + x if self.use_res_connect else out


class MobileNetV3Large(nn.Module):
    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        first, last = BLOCKS[0][0], BLOCKS[-1][3]
        layers: list[nn.Module] = [ConvBNActivation(3, first, 3, 2, activation=nn.Hardswish)]
        layers += [InvertedResidual(*block) for block in BLOCKS]
        layers.append(ConvBNActivation(last, 6 * last, 1, activation=nn.Hardswish))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(6 * last, LAST_CHANNEL),
            nn.Hardswish(inplace=True),
            nn.Dropout(p=0.2, inplace=True),
            nn.Linear(LAST_CHANNEL, num_classes),
        )
        for module in self.modules():  # torchvision's initialization
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, 0, 0.01)
                nn.init.zeros_(module.bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


def mobilenet_v3_large() -> MobileNetV3Large:
    """The factory ``export --from`` calls: MobileNetV3-Large, 1000 classes, its size checked."""
    model = MobileNetV3Large()
    count = sum(p.numel() for p in model.parameters())
    if count != NUM_PARAMS:
        raise ValueError(
            f"MobileNetV3-Large has {count:,} parameters, torchvision's has {NUM_PARAMS:,}"
        )
    return model
