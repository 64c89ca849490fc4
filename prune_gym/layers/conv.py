"""A 2-d convolution (groups == 1): it reads a unit's channels and makes the next unit's.

It costs Cin*Cout*kh*kw*Hout*Wout MACs. Its refit reproduces its output at a few sampled
positions per image, each row of the design matrix the input patch read there.
"""

from __future__ import annotations

import torch
from torch import nn

from prune_gym.layers.base import LayerKind, Role, keep
from prune_gym.reconstruction import sample_positions


class Conv(LayerKind):
    role = Role.LAYER
    counted = True

    def accepts(self, module: nn.Conv2d) -> bool:
        return module.groups == 1

    def features(self, module: nn.Conv2d, input_shape: tuple[int, ...] | None) -> dict[str, float]:
        return {"layer_type": 0.0, "in_channels": float(module.in_channels), "kernel": float(module.kernel_size[0]),
                "stride": float(module.stride[0]),
                "feature_map": float(input_shape[2] * input_shape[3]) if input_shape else 1.0}

    def keep_outputs(self, module: nn.Conv2d, index: torch.Tensor) -> None:
        module.weight, module.bias = keep(module.weight, index), keep(module.bias, index)
        module.out_channels = len(index)

    def keep_inputs(self, module: nn.Conv2d, index: torch.Tensor, block: int) -> None:
        module.weight = keep(module.weight, index, dim=1)
        module.in_channels = len(index)

    def macs(self, module: nn.Conv2d, output: torch.Tensor) -> int:
        kh, kw = module.kernel_size
        return output[0].numel() * (module.in_channels // module.groups) * kh * kw

    def widths(self, module: nn.Conv2d) -> tuple[int, int]:
        return module.in_channels, module.out_channels

    def standin(self, module: nn.Conv2d, input_shape: tuple[int, ...], c_in: int,
                c_out: int) -> tuple[nn.Module, tuple[int, ...]]:
        return resized_conv(module, c_in, c_out, module.groups), (1, c_in, *input_shape[2:])

    def positions(self, module: nn.Conv2d, output: torch.Tensor, per_image: int,
                  generator: torch.Generator) -> torch.Tensor:
        return sample_positions(len(output), output.shape[2], output.shape[3], per_image, generator)

    def rows(self, module: nn.Conv2d, x: torch.Tensor, positions: torch.Tensor | None) -> torch.Tensor:
        return conv_patches(x, module, positions, _output_width(module, x.shape[3]))

    def outputs(self, module: nn.Conv2d, output: torch.Tensor, positions: torch.Tensor | None) -> torch.Tensor:
        return conv_outputs(output, positions)

    def columns_per_channel(self, module: nn.Conv2d, block: int) -> int:
        return module.kernel_size[0] * module.kernel_size[1]


def resized_conv(module: nn.Conv2d, c_in: int, c_out: int, groups: int) -> nn.Conv2d:
    """A fresh conv of `module`'s geometry with other widths and groups, in eval mode."""
    return nn.Conv2d(c_in, c_out, module.kernel_size, module.stride, module.padding, module.dilation, groups,
                     module.bias is not None, module.padding_mode).eval()


def _output_width(conv: nn.Conv2d, width: int) -> int:
    """The width of the conv's output map for an input `width` wide."""
    return (width + 2 * conv.padding[1] - conv.dilation[1] * (conv.kernel_size[1] - 1) - 1) // conv.stride[1] + 1


def conv_patches(x: torch.Tensor, conv: nn.Conv2d, positions: torch.Tensor, out_width: int) -> torch.Tensor:
    """The input patches that `conv` reads at the given output positions: (n * p, c * kh * kw).

    Gathers only the sampled patches instead of unfolding the whole map.
    """
    n, c = x.shape[:2]
    kh, kw = conv.kernel_size
    sh, sw = conv.stride
    dh, dw = conv.dilation
    ph, pw = conv.padding
    padded = torch.nn.functional.pad(x, (pw, pw, ph, ph))
    positions = positions.to(x.device)
    oy, ox = positions // out_width, positions % out_width  # (n, p)
    rows = oy[:, :, None] * sh + torch.arange(kh, device=x.device)[None, None, :] * dh  # (n, p, kh)
    cols = ox[:, :, None] * sw + torch.arange(kw, device=x.device)[None, None, :] * dw  # (n, p, kw)
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    # padded[n, :, rows, cols] for every (kh, kw) pair -> (n, p, kh, kw, c)
    patches = padded.permute(0, 2, 3, 1)[batch, rows[:, :, :, None], cols[:, :, None, :]]
    return patches.permute(0, 1, 4, 2, 3).reshape(-1, c * kh * kw)


def conv_outputs(y: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """A (n, out, H, W) map at the given flat positions: (n * p, out)."""
    n, out = y.shape[:2]
    flat = y.reshape(n, out, -1)
    index = positions.to(y.device)[:, None, :].expand(n, out, positions.shape[1])
    return flat.gather(2, index).permute(0, 2, 1).reshape(-1, out)
