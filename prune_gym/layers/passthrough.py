"""Modules that keep their input's channels and hold nothing per channel: activations, dropout, pooling.

The graph follows a unit through them; they need no surgery and cost no MACs. Element-wise
ones keep channels in place in any layout, so a channels-last unit (an MLP's hidden width)
passes through them too; pooling reads (N, C, H, W) maps only.
"""

from __future__ import annotations

from prune_gym.layers.base import LayerKind, Role


class PassThrough(LayerKind):
    """:param elementwise: whether it also keeps the channels of (N, ..., C) tensors in place"""

    role = Role.PASS

    def __init__(self, elementwise: bool):
        self.elementwise = elementwise
