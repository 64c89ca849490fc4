"""Physically removing channels from layers, in place: the pruned network really is smaller."""

from __future__ import annotations

import torch
from torch import nn

from prune_gym.graph import Unit
from prune_gym.layers import kind_of


def keep_unit_channels(unit: Unit, modules: dict[str, nn.Module], index: torch.Tensor) -> None:
    """Keep only the unit's channels `index` (sorted) in every module it touches, each the part it carries: the
    outputs of its producers and members (a grouped conv's inputs too) and its consumers' inputs. An episode
    and the export's `load_slim` both cut a network so."""
    for name in (*unit.producers, *unit.members):
        kind_of(modules[name]).keep_outputs(modules[name], unit.part(name, index))
    for consumer in unit.consumers:
        module = modules[consumer.module]
        kind_of(module).keep_inputs(module, unit.part(consumer.input_node, index), consumer.block)


def flat_weight(module: nn.Module) -> torch.Tensor:
    """The weight as (out, in * kh * kw), the column order of a layer kind's `rows` / a flattened input."""
    return module.weight.detach().reshape(module.weight.shape[0], -1)


def set_flat_weight(module: nn.Module, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
    """Write refitted weights of shape (out, in * kh * kw) back into a conv or linear layer."""
    module.weight.data = weight.reshape(module.weight.shape).to(module.weight.dtype).contiguous()
    if bias is not None:
        module.bias.data = bias.to(module.bias.dtype)
