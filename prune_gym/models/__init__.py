"""The model zoo: every model adapts its input channels, class count and stem to a data set.

`build_model('resnet20', in_channels=1, num_classes=10, image_size=28)` gives a model for
Fashion-MNIST; the canonical geometry of each model is in `CANONICAL_INPUT`.
"""

from __future__ import annotations

from typing import Callable

from torch import nn

from prune_gym.errors import UnknownNameError
from prune_gym.models.cifar_resnet import CifarResNet
from prune_gym.models.mobilenet_v1 import MobileNetV1
from prune_gym.models.torchvision_models import SMALL_INPUT, mobilenet_v2, resnet

Builder = Callable[[int, int, int], nn.Module]  # (in_channels, num_classes, image_size)

MODELS: dict[str, Builder] = {
    "resnet20": lambda c, k, s: CifarResNet(20, c, k),
    "resnet56": lambda c, k, s: CifarResNet(56, c, k),
    "resnet18": lambda c, k, s: resnet("resnet18", c, k, s),
    "resnet34": lambda c, k, s: resnet("resnet34", c, k, s),
    "resnet50": lambda c, k, s: resnet("resnet50", c, k, s),
    "mobilenet_v1": lambda c, k, s: MobileNetV1(c, k, stem_stride=1 if s <= SMALL_INPUT else 2),
    "mobilenet_v2": mobilenet_v2,
}

# (in_channels, num_classes, image_size) at which each model is usually quoted.
CANONICAL_INPUT: dict[str, tuple[int, int, int]] = {
    "resnet20": (3, 10, 32),
    "resnet56": (3, 10, 32),
    "resnet18": (3, 1000, 224),
    "resnet34": (3, 1000, 224),
    "resnet50": (3, 1000, 224),
    "mobilenet_v1": (3, 1000, 224),
    "mobilenet_v2": (3, 1000, 224),
}


def model_names() -> list[str]:
    return list(MODELS)


def check_model_name(name: str) -> None:
    """Refuse a name the zoo does not hold, in one line that lists the ones it does."""
    if name not in MODELS:
        raise UnknownNameError("model", name, model_names())


def build_model(name: str, in_channels: int = 3, num_classes: int = 10, image_size: int = 32) -> nn.Module:
    """A freshly initialised zoo model for images of `in_channels` x `image_size` x `image_size`."""
    check_model_name(name)
    return MODELS[name](in_channels, num_classes, image_size)
