"""Grouped and depthwise convolutions (groups > 1), counted as convs.

Output group g reads input group g only. With as many outputs as inputs (a depthwise conv,
a ResNeXt or RegNet grouped conv), keeping whole groups keeps the same channels on both
sides: the conv is a member of its input's unit, cut in whole groups. With more or fewer
outputs than inputs, the channels it reads and writes stay whole.
"""

from __future__ import annotations

import torch
from torch import nn

from prune_gym.layers.base import Role, keep
from prune_gym.layers.conv import Conv, resized_conv


def _describe(conv: nn.Conv2d, name: str) -> str:
    return f"grouped conv ({conv.groups} groups) at {name}"


class GroupedConv(Conv):
    """A grouped conv whose outputs follow its inputs: a member of its input's unit."""

    role = Role.MEMBER

    def accepts(self, module: nn.Conv2d) -> bool:
        return module.groups > 1 and module.in_channels == module.out_channels

    def describe(self, module: nn.Conv2d, name: str) -> str:
        return _describe(module, name)

    def granularity(self, module: nn.Conv2d) -> int:
        return module.in_channels // module.groups

    def keep_outputs(self, module: nn.Conv2d, index: torch.Tensor) -> None:
        """Its inputs are the same channels, `index` holding whole groups."""
        module.weight, module.bias = keep(module.weight, index), keep(module.bias, index)
        module.groups = len(index) // (module.in_channels // module.groups)
        module.in_channels = module.out_channels = len(index)

    def standin(self, module: nn.Conv2d, input_shape: tuple[int, ...], c_in: int,
                c_out: int) -> tuple[nn.Module, tuple[int, ...]]:
        """Its outputs follow its `c_in` inputs, in groups as wide as the original's."""
        groups = c_in // (module.in_channels // module.groups)
        return resized_conv(module, c_in, c_in, groups), (1, c_in, *input_shape[2:])


class UnevenGroupedConv(Conv):
    """A grouped conv with more or fewer outputs than inputs: the channels on both sides stay whole."""

    role = Role.COUPLES

    def accepts(self, module: nn.Conv2d) -> bool:
        return module.groups > 1 and module.in_channels != module.out_channels

    def describe(self, module: nn.Conv2d, name: str) -> str:
        return _describe(module, name)
