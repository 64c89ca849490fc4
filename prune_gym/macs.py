"""Analytic multiply-accumulate counts of conv and linear layers, the budget's unit.

A conv costs Cin*Cout*kh*kw*Hout*Wout/groups MACs, a linear layer in*out; everything else
(BatchNorm, activations, pooling, additions) is left out, as in AMC and PocketFlow. Each
formula is its layer kind's `macs` (`prune_gym.layers`): the kinds that the budgets count.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from prune_gym.layers import kind_of


@dataclass(frozen=True)
class LayerCost:
    name: str
    macs: int
    params: int


@torch.no_grad()
def layer_costs(model: nn.Module, input_shape: tuple[int, ...]) -> list[LayerCost]:
    """MACs and weight counts of every conv and linear layer (every counted kind), for one input of
    `input_shape` (C, H, W)."""
    costs: list[LayerCost] = []
    hooks = []
    for name, module in model.named_modules():
        if kind_of(module).counted:
            def hook(mod, args, out, name=name):
                costs.append(LayerCost(name, kind_of(mod).macs(mod, out), sum(p.numel() for p in mod.parameters())))
            hooks.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
        model(torch.zeros(1, *input_shape, device=device))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return costs


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Total conv + linear MACs for one input of `input_shape` (C, H, W)."""
    return sum(c.macs for c in layer_costs(model, input_shape))


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
