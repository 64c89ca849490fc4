"""Physically removing channels from layers, in place: the pruned network really is smaller."""

from __future__ import annotations

import torch
from torch import nn


def _keep(tensor: torch.Tensor | None, index: torch.Tensor, dim: int = 0) -> nn.Parameter | torch.Tensor | None:
    if tensor is None:
        return None
    kept = tensor.detach().index_select(dim, index.to(tensor.device)).clone()
    return nn.Parameter(kept, requires_grad=tensor.requires_grad) if isinstance(tensor, nn.Parameter) else kept


def keep_output_channels(module: nn.Module, index: torch.Tensor) -> None:
    """Keep only the output channels `index` of a conv, linear or BatchNorm layer (a depthwise or grouped conv's
    inputs too: `index` then holds whole groups)."""
    n = len(index)
    if isinstance(module, nn.Conv2d):
        module.weight = _keep(module.weight, index)
        module.bias = _keep(module.bias, index)
        if module.groups > 1:  # depthwise or grouped: its inputs are the same channels, in whole groups
            module.groups = n // (module.in_channels // module.groups)
            module.in_channels = n
        module.out_channels = n
    elif isinstance(module, nn.Linear):
        module.weight, module.bias = _keep(module.weight, index), _keep(module.bias, index)
        module.out_features = n
    elif isinstance(module, nn.BatchNorm2d):
        module.weight, module.bias = _keep(module.weight, index), _keep(module.bias, index)
        module.running_mean = _keep(module.running_mean, index)
        module.running_var = _keep(module.running_var, index)
        module.num_features = n
    else:
        raise TypeError(f"cannot prune the output channels of {type(module).__name__}")


def input_columns(index: torch.Tensor, block: int) -> torch.Tensor:
    """Input columns of channels `index` when each channel spans `block` consecutive columns."""
    return (index[:, None] * block + torch.arange(block, device=index.device)).reshape(-1)


def keep_input_channels(module: nn.Module, index: torch.Tensor, block: int = 1) -> None:
    """Keep only the input channels `index` of a conv or linear layer."""
    if isinstance(module, nn.Conv2d):
        module.weight = _keep(module.weight, index, dim=1)
        module.in_channels = len(index)
    elif isinstance(module, nn.Linear):
        module.weight = _keep(module.weight, input_columns(index, block), dim=1)
        module.in_features = module.weight.shape[1]
    else:
        raise TypeError(f"cannot prune the input channels of {type(module).__name__}")


def flat_weight(module: nn.Module) -> torch.Tensor:
    """The weight as (out, in * kh * kw), the column order of `conv_patches` / a flattened input."""
    return module.weight.detach().reshape(module.weight.shape[0], -1)


def set_flat_weight(module: nn.Module, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
    """Write refitted weights of shape (out, in * kh * kw) back into a conv or linear layer."""
    module.weight.data = weight.reshape(module.weight.shape).to(module.weight.dtype).contiguous()
    if bias is not None:
        module.bias.data = bias.to(module.bias.dtype)
