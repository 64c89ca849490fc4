"""torchvision's ResNets and MobileNet v2, adapted to the input geometry of a data set.

On small images (CIFAR, Fashion-MNIST) the ImageNet stem would shrink a 32x32 input to
1x1 before the last stage; as is usual for these data sets, the stem becomes a stride-1
3x3 conv (ResNet: no max-pool; MobileNet v2: its first stride-2 block also keeps stride 1).
"""

from __future__ import annotations

from torch import nn

SMALL_INPUT = 64  # images up to this size get the small-input stem


def resnet(name: str, in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    from torchvision import models as tvm  # here, not at import: torchvision costs seconds to import

    model = getattr(tvm, name)(weights=None, num_classes=num_classes)
    if image_size <= SMALL_INPUT:
        model.conv1 = nn.Conv2d(in_channels, 64, 3, 1, 1, bias=False)
        model.maxpool = nn.Identity()
    elif in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    return model


def mobilenet_v2(in_channels: int, num_classes: int, image_size: int) -> nn.Module:
    from torchvision import models as tvm

    model = tvm.mobilenet_v2(weights=None, num_classes=num_classes)
    small = image_size <= SMALL_INPUT
    stem = model.features[0][0]
    if small or in_channels != 3:
        model.features[0][0] = nn.Conv2d(in_channels, stem.out_channels, 3, 1 if small else 2, 1, bias=False)
    if small:
        model.features[2].conv[1][0].stride = (1, 1)  # the first stride-2 depthwise conv
    return model
