"""What a layer kind is: the hooks through which prune-gym handles one type of module.

Every part of the package that treats layers differently asks the module's kind (see
`prune_gym.layers.registry`) instead of checking its type: the graph (the kind's `role`),
the surgery that removes channels, the MACs count, the reconstruction's rows and the
latency table's stand-in. A kind implements the hooks its role needs, `REQUIRED_HOOKS`
says which; the others keep the defaults below, which refuse with the module's type.
"""

from __future__ import annotations

from enum import Enum
from typing import ClassVar

import torch
from torch import nn


class Role(Enum):
    """What a module does to the channels it reads; the graph follows a unit through its modules by it."""

    LAYER = "layer"  # reads a unit's channels and makes new ones (conv, linear): a consumer and a producer
    MEMBER = "member"  # keeps its input's channels and holds state per channel, cut with the unit (BatchNorm)
    PASS = "pass-through"  # keeps its input's channels and holds nothing per channel (activations, pooling)
    FLATTEN = "flatten"  # (N, C, H, W) -> (N, C*H*W): each channel becomes a block of columns
    COUPLES = "couples"  # mixes or moves channels: what it reads and writes stays whole


class LayerKind:
    """How prune-gym handles one kind of module: a small class, an instance registered for each type it handles.

    Set `role` (and `counted`, `elementwise` where they apply) and override the hooks that
    the role needs (`REQUIRED_HOOKS`); `register` refuses a kind that lacks one. The refit
    rewrites a layer's `weight` (outputs first) and `bias` (or None) in place.
    """

    role: ClassVar[Role] = Role.COUPLES
    counted: ClassVar[bool] = False  # the budgets count its MACs and time it: a conv or linear layer
    elementwise: bool = False  # of a member or pass-through: keeps channels in place in (N, ..., C) tensors too

    def accepts(self, module: nn.Module) -> bool:
        """Whether this kind handles `module`: several kinds can share a type (a conv with or without groups).

        :param module: a module of the registered type (or a subclass)
        """
        return True

    # -- the graph ---------------------------------------------------------------------------

    def describe(self, module: nn.Module, name: str) -> str:
        """How a freeze reason names the module, when the channels it touches must stay whole.

        :param name: the module's qualified name in the network
        """
        return f"{type(module).__name__} at {name}"

    def channels_last(self, module: nn.Module, output_shape: tuple[int, ...]) -> bool:
        """Whether a layer reads and writes the last dimension of (N, ..., C) tensors (a linear layer on more
        than two dimensions), not dimension 1."""
        return False

    def granularity(self, module: nn.Module) -> int:
        """A member's channels go in whole groups of this many (a grouped conv's group width)."""
        return 1

    def features(self, module: nn.Module, input_shape: tuple[int, ...] | None) -> dict[str, float]:
        """A producer's static description for the observation: layer_type, in_channels, kernel, stride and
        feature_map (see `prune_gym.rules.STATIC_FEATURES`).

        :param input_shape: the shape of its input at trace time, None if unknown
        """
        raise TypeError(f"no observation features for {type(module).__name__}")

    # -- the surgery -------------------------------------------------------------------------

    def keep_outputs(self, module: nn.Module, index: torch.Tensor) -> None:
        """Keep only the output channels `index` (sorted), in place: a producer's or a member's.

        :param index: the kept channels among those the module writes
        """
        raise TypeError(f"cannot prune the output channels of {type(module).__name__}")

    def keep_inputs(self, module: nn.Module, index: torch.Tensor, block: int) -> None:
        """Keep only the input channels `index` (sorted), in place: a consumer's.

        :param block: input columns per channel: 1, or H*W for a linear layer after a flatten
        """
        raise TypeError(f"cannot prune the input channels of {type(module).__name__}")

    # -- the budgets -------------------------------------------------------------------------

    def macs(self, module: nn.Module, output: torch.Tensor) -> int:
        """Multiply-accumulates for one image, given the module's output (a batch, or meta tensor)."""
        raise TypeError(f"no MACs formula for {type(module).__name__}")

    def widths(self, module: nn.Module) -> tuple[int, int]:
        """The layer's input and output channels (columns, for a linear layer after a flatten)."""
        raise TypeError(f"no widths for {type(module).__name__}")

    def standin(self, module: nn.Module, input_shape: tuple[int, ...], c_in: int,
                c_out: int) -> tuple[nn.Module, tuple[int, ...]] | None:
        """What the latency table times for the module with `c_in` input and `c_out` output channels: a fresh
        module of that width and the shape of its input at batch 1; None if it is left to the constant rest.

        :param input_shape: the module's input shape in the unpruned network
        """
        return None

    # -- the reconstruction ------------------------------------------------------------------

    def positions(self, module: nn.Module, output: torch.Tensor, per_image: int,
                  generator: torch.Generator) -> torch.Tensor | None:
        """Output positions (flat indices, (images, per image)) whose values a consumer's refit reproduces;
        None where each image gives one row."""
        raise TypeError(f"no reconstruction rows for {type(module).__name__}")

    def rows(self, module: nn.Module, x: torch.Tensor, positions: torch.Tensor | None) -> torch.Tensor:
        """The consumer's input `x` as the design matrix of its refit: (rows, columns), a channel's columns
        together (`columns_per_channel` of them), without a bias column; its weight, flattened to
        (out, columns), maps a row to the output at that position."""
        raise TypeError(f"no reconstruction rows for {type(module).__name__}")

    def outputs(self, module: nn.Module, output: torch.Tensor, positions: torch.Tensor | None) -> torch.Tensor:
        """A tensor of the consumer's output shape at `positions`: (rows, out), matching `rows`."""
        raise TypeError(f"no reconstruction rows for {type(module).__name__}")

    def columns_per_channel(self, module: nn.Module, block: int) -> int:
        """Columns of the design matrix per input channel (kh * kw for a conv).

        :param block: input columns per channel of the tensor it reads (a flatten's H*W, else 1)
        """
        raise TypeError(f"no reconstruction rows for {type(module).__name__}")

    def residual_scale(self, module: nn.Module) -> torch.Tensor | None:
        """Of a member between a consumer and a residual addition: its multiplier per channel, which the
        shortcut's drift is divided by (a BatchNorm's); None where the refit cannot see through it."""
        return None


# The hooks a kind of each role, and a counted kind, must override; the graph asks the others of no such kind.
REQUIRED_HOOKS: dict[Role, tuple[str, ...]] = {
    Role.LAYER: ("features", "keep_outputs", "keep_inputs", "positions", "rows", "outputs", "columns_per_channel"),
    Role.MEMBER: ("keep_outputs",),
    Role.PASS: (),
    Role.FLATTEN: (),
    Role.COUPLES: (),
}
COUNTED_HOOKS = ("macs", "widths", "standin")


def keep(tensor: torch.Tensor | None, index: torch.Tensor, dim: int = 0) -> nn.Parameter | torch.Tensor | None:
    """`tensor` with only the entries `index` along `dim`, a copy (a parameter stays a parameter); None stays None."""
    if tensor is None:
        return None
    kept = tensor.detach().index_select(dim, index.to(tensor.device)).clone()
    return nn.Parameter(kept, requires_grad=tensor.requires_grad) if isinstance(tensor, nn.Parameter) else kept


def input_columns(index: torch.Tensor, block: int) -> torch.Tensor:
    """Input columns of channels `index` when each channel spans `block` consecutive columns."""
    return (index[:, None] * block + torch.arange(block, device=index.device)).reshape(-1)
