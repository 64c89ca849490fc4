"""`nn.Flatten`: (N, C, H, W) -> (N, C*H*W) makes each channel a block of H*W columns of the layer after it.

The graph handles it as it does `torch.flatten` and `view`: any other reshape couples.
"""

from __future__ import annotations

from prune_gym.layers.base import LayerKind, Role


class Flatten(LayerKind):
    role = Role.FLATTEN
