"""MobileNet v1 (Howard et al. 2017): a stem conv, then 13 depthwise-separable blocks.

torchvision has no MobileNet v1; this follows the paper's Table 1 (width multiplier 1).
"""

from __future__ import annotations

import torch
from torch import nn

# (output channels, stride) of the 13 depthwise-separable blocks.
BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [(1024, 2), (1024, 1)]


def _conv_bn_relu(in_channels: int, out_channels: int, kernel: int, stride: int, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class MobileNetV1(nn.Module):
    def __init__(self, in_channels: int = 3, num_classes: int = 1000, stem_stride: int = 2):
        super().__init__()
        layers = [_conv_bn_relu(in_channels, 32, 3, stem_stride)]
        width = 32
        for out_width, stride in BLOCKS:
            layers.append(nn.Sequential(
                _conv_bn_relu(width, width, 3, stride, groups=width),  # depthwise
                _conv_bn_relu(width, out_width, 1, 1),  # pointwise
            ))
            width = out_width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(width, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))
