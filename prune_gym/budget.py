"""The FLOPs budget: MACs of a partially pruned network and AMC's "action wall".

A layer's MACs scale with the kept fraction of the unit its inputs belong to and of the
unit its outputs belong to (a depthwise conv only with its inputs'). Before each step the
wall gives the most channels the current unit may keep such that, with every later unit
at its minimum, the network still meets the target. Unlike AMC, the minimum is applied
inside the wall, so no episode can end over budget.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from prune_gym.errors import PruneGymError
from prune_gym.graph import Layer, Unit


class MacsBudget:
    def __init__(self, units: Sequence[Unit], layers: Sequence[Layer], target_ratio: float, min_keep: float):
        if not 0 < min_keep <= 1:
            raise PruneGymError(f"min_keep must be in (0, 1], got {min_keep}")
        self.channels = np.array([u.channels for u in units], dtype=np.int64)
        self.min_channels = np.maximum(1, np.ceil(min_keep * self.channels - 1e-9)).astype(np.int64)
        self._macs = np.array([layer.macs for layer in layers], dtype=np.float64)
        self._in = np.array([-1 if layer.in_unit is None else layer.in_unit for layer in layers])
        self._out = np.array([-1 if layer.out_unit is None else layer.out_unit for layer in layers])
        self.total_macs = float(self._macs.sum())
        self.target_ratio = float(target_ratio)
        low = self.ratio(self.min_channels)
        if not (math.isfinite(self.target_ratio) and low <= self.target_ratio <= 1):
            raise PruneGymError(f"target ratio {target_ratio} is unreachable: with at least {min_keep:.0%} of each "
                                f"unit's channels kept, the reachable range is [{low:.4f}, 1]")

    def layer_fractions(self, kept: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        fraction = np.append(kept / self.channels, 1.0)  # index -1: not a unit, always whole
        return fraction[self._in], fraction[self._out]

    def macs(self, kept: Sequence[int]) -> float:
        """MACs with `kept` channels in each unit."""
        f_in, f_out = self.layer_fractions(np.asarray(kept, dtype=np.float64))
        return float((self._macs * f_in * f_out).sum())

    def ratio(self, kept: Sequence[int]) -> float:
        return self.macs(kept) / self.total_macs

    def unit_macs(self, unit: int) -> float:
        """MACs of the layers whose channels this unit controls, unpruned."""
        return float(self._macs[(self._in == unit) | (self._out == unit)].sum())

    def max_keep(self, unit: int, decided: Sequence[int]) -> int:
        """The wall: most channels `unit` may keep, given earlier units' counts and later ones at their minimum."""
        kept = self.min_channels.astype(np.float64).copy()
        kept[:unit] = decided[:unit]
        kept[unit] = 0
        base = self.macs(kept)
        kept[unit] = 1
        per_channel = self.macs(kept) - base  # MACs are linear in one unit's count
        budget = self.target_ratio * self.total_macs
        if per_channel <= 0:
            return int(self.channels[unit])
        allowed = math.floor((budget - base) / per_channel * (1 + 1e-12))
        return int(np.clip(allowed, self.min_channels[unit], self.channels[unit]))
