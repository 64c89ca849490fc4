"""Layer kinds, one file each, and the registry that maps module types to them (`registry` says how to add one).

The graph, the surgery, the MACs count, the reconstruction, the latency table and the
export ask `kind_of(module)` how to handle a module, never its type.
"""

from __future__ import annotations

from torch import nn

from prune_gym.layers.base import LayerKind, Role, input_columns, keep
from prune_gym.layers.batchnorm import BatchNorm
from prune_gym.layers.conv import Conv
from prune_gym.layers.flatten import Flatten
from prune_gym.layers.grouped_conv import GroupedConv, UnevenGroupedConv
from prune_gym.layers.linear import Linear
from prune_gym.layers.passthrough import PassThrough
from prune_gym.layers.registry import UNKNOWN, LayerKindError, kind_of, register, traced_whole

ELEMENTWISE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.SiLU, nn.GELU,
               nn.Mish, nn.ELU, nn.SELU, nn.Sigmoid, nn.Tanh, nn.Dropout, nn.Dropout2d, nn.Identity)
POOLING = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)

for _kind in (Conv(), GroupedConv(), UnevenGroupedConv()):
    register(nn.Conv2d, _kind)
register(nn.Linear, Linear())
register(nn.BatchNorm2d, BatchNorm())
register(nn.Flatten, Flatten())
for _type in ELEMENTWISE:
    register(_type, PassThrough(elementwise=True))
for _type in POOLING:
    register(_type, PassThrough(elementwise=False))

__all__ = ["UNKNOWN", "BatchNorm", "Conv", "Flatten", "GroupedConv", "LayerKind", "LayerKindError", "Linear",
           "PassThrough", "Role", "UnevenGroupedConv", "input_columns", "keep", "kind_of", "register",
           "traced_whole"]
