"""A 2-d BatchNorm: a member of its input's unit, its statistics and affine parameters cut with it.

Its MACs are left out, as in AMC and PocketFlow; the latency table times it with the unit's
producer, as it shrinks with the unit. At the end of a residual branch, the consumer's refit
undoes its scale on the shortcut's drift.
"""

from __future__ import annotations

import torch
from torch import nn

from prune_gym.layers.base import LayerKind, Role, keep


class BatchNorm(LayerKind):
    role = Role.MEMBER

    def keep_outputs(self, module: nn.BatchNorm2d, index: torch.Tensor) -> None:
        module.weight, module.bias = keep(module.weight, index), keep(module.bias, index)
        module.running_mean = keep(module.running_mean, index)
        module.running_var = keep(module.running_var, index)
        module.num_features = len(index)

    def standin(self, module: nn.BatchNorm2d, input_shape: tuple[int, ...], c_in: int,
                c_out: int) -> tuple[nn.Module, tuple[int, ...]]:
        return nn.BatchNorm2d(c_in).eval(), (1, c_in, *input_shape[2:])

    def residual_scale(self, module: nn.BatchNorm2d) -> torch.Tensor | None:
        if module.running_var is None:  # it normalises by each batch's own statistics: no fixed scale
            return None
        std = torch.sqrt(module.running_var + module.eps)
        return 1 / std if module.weight is None else module.weight / std
