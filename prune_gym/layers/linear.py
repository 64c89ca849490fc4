"""A linear layer: it reads a unit's channels and makes the next unit's.

On (N, C) inputs it reads a channel per column, or a block of H*W columns per channel after
a flatten; its refit reproduces its output on every image. On (N, ..., C) inputs (the MLPs
of ConvNeXt and vision transformers) the channels are the last dimension, and the refit
reproduces its output at a few sampled positions per image. It costs in*out MACs per row.
"""

from __future__ import annotations

import torch
from torch import nn

from prune_gym.layers.base import LayerKind, Role, input_columns, keep
from prune_gym.reconstruction import sample_positions


class Linear(LayerKind):
    role = Role.LAYER
    counted = True

    def channels_last(self, module: nn.Linear, output_shape: tuple[int, ...]) -> bool:
        return len(output_shape) > 2

    def features(self, module: nn.Linear, input_shape: tuple[int, ...] | None) -> dict[str, float]:
        return {"layer_type": 1.0, "in_channels": float(module.in_features), "kernel": 1.0, "stride": 1.0,
                "feature_map": 1.0}

    def keep_outputs(self, module: nn.Linear, index: torch.Tensor) -> None:
        module.weight, module.bias = keep(module.weight, index), keep(module.bias, index)
        module.out_features = len(index)

    def keep_inputs(self, module: nn.Linear, index: torch.Tensor, block: int) -> None:
        module.weight = keep(module.weight, input_columns(index, block), dim=1)
        module.in_features = module.weight.shape[1]

    def macs(self, module: nn.Linear, output: torch.Tensor) -> int:
        return output[0].numel() * module.in_features

    def widths(self, module: nn.Linear) -> tuple[int, int]:
        return module.in_features, module.out_features

    def standin(self, module: nn.Linear, input_shape: tuple[int, ...], c_in: int,
                c_out: int) -> tuple[nn.Module, tuple[int, ...]]:
        return nn.Linear(c_in, c_out, bias=module.bias is not None).eval(), (1, c_in)

    def positions(self, module: nn.Linear, output: torch.Tensor, per_image: int,
                  generator: torch.Generator) -> torch.Tensor | None:
        if output.dim() > 2:  # channels last: the positions of each image's (..., C) map
            return sample_positions(len(output), 1, output[0, ..., 0].numel(), per_image, generator)
        return None

    def rows(self, module: nn.Linear, x: torch.Tensor, positions: torch.Tensor | None) -> torch.Tensor:
        return x.flatten(1) if positions is None else _at_positions(x, positions)

    def outputs(self, module: nn.Linear, output: torch.Tensor, positions: torch.Tensor | None) -> torch.Tensor:
        return output if positions is None else _at_positions(output, positions)

    def columns_per_channel(self, module: nn.Linear, block: int) -> int:
        return block


def _at_positions(t: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """A channels-last (N, ..., C) tensor at the given flat positions: (n * p, C)."""
    flat = t.reshape(len(t), -1, t.shape[-1])
    return flat[torch.arange(len(t), device=t.device)[:, None], positions.to(t.device)].reshape(-1, t.shape[-1])
