"""The FLOPs budget: MACs of a partially pruned network, and AMC's action wall in closed form.

A layer's MACs scale with the kept fraction of the unit its inputs belong to and of the
unit its outputs belong to (a depthwise conv only with its inputs'). Both are one unit for a
squeeze-excitation gate's expand conv, whose MACs are then quadratic in that unit's count.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from prune_gym.budgets.base import Budget
from prune_gym.graph import Layer, PruningGraph


class MacsBudget(Budget):
    kind = "macs"

    def __init__(self, graph: PruningGraph, target_ratio: float, min_keep: float, device: torch.device | str = "cpu"):
        super().__init__(graph, target_ratio, min_keep, device)
        layers = self.layers
        self._macs = np.array([layer.macs for layer in layers], dtype=np.float64)
        self._in = np.array([-1 if layer.in_unit is None else layer.in_unit for layer in layers])
        self._out = np.array([-1 if layer.out_unit is None else layer.out_unit for layer in layers])
        self._total = float(self._macs.sum())
        self.check_reachable()

    @property
    def total(self) -> float:
        return self._total

    def layer_fractions(self, kept: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each layer's kept fraction of its inputs and of its outputs, for `kept` of shape (units,) or (rows, units)."""
        whole = np.ones(kept.shape[:-1] + (1,))  # index -1: not a unit, always whole
        fraction = np.concatenate([kept / self.channels, whole], axis=-1)
        return fraction[..., self._in], fraction[..., self._out]

    def cost(self, kept: Sequence[int]) -> float:
        """MACs with `kept` channels in each unit."""
        f_in, f_out = self.layer_fractions(np.asarray(kept, dtype=np.float64))
        return float((self._macs * f_in * f_out).sum())

    def cost_batch(self, kept: np.ndarray) -> np.ndarray:
        """`cost` of each row of `kept` (rows, units)."""
        f_in, f_out = self.layer_fractions(np.asarray(kept, dtype=np.float64))
        return (self._macs * f_in * f_out).sum(axis=-1)

    def ratio_batch(self, kept: np.ndarray) -> np.ndarray:
        return self.cost_batch(kept) / self.total

    def unit_cost(self, unit: int) -> float:
        return float(self._macs[(self._in == unit) | (self._out == unit)].sum())

    def floor_shares(self) -> list[tuple[Layer, float]]:
        f_in, f_out = self.layer_fractions(self.min_channels.astype(np.float64))
        shares = self._macs * f_in * f_out / self.total
        return [(self.layers[i], float(shares[i])) for i in np.argsort(-shares, kind="stable")]

    def cost_after(self, unit: int) -> float:
        later = np.maximum(self._in, self._out) > unit
        return float(self._macs[later].sum()) / self.total

    def max_keep(self, unit: int, decided: Sequence[int]) -> int:
        """The wall in closed form where MACs are linear in one unit's count; by bisection where a layer
        reads and writes the unit's channels (quadratic)."""
        if ((self._in == unit) & (self._out == unit)).any():
            return super().max_keep(unit, decided)
        kept = self.min_channels.astype(np.float64).copy()
        kept[:unit] = decided[:unit]
        kept[unit] = 0
        base = self.cost(kept)
        kept[unit] = 1
        per_channel = self.cost(kept) - base
        budget = self.target_ratio * self.total
        if per_channel <= 0:
            return int(self.channels[unit])
        allowed = math.floor((budget - base) / per_channel * (1 + 1e-12))
        return self.whole_groups(unit, int(np.clip(allowed, self.min_channels[unit], self.channels[unit])))

    def max_keep_batch(self, unit: int, decided: np.ndarray) -> np.ndarray:
        """`max_keep`'s closed form for many episodes at once, one row of `decided` each."""
        if ((self._in == unit) & (self._out == unit)).any():
            return super().max_keep_batch(unit, decided)
        kept = np.tile(self.min_channels.astype(np.float64), (len(decided), 1))
        kept[:, :unit] = decided[:, :unit]
        kept[:, unit] = 0
        base = self.cost_batch(kept)
        kept[:, unit] = 1
        per_channel = self.cost_batch(kept) - base
        with np.errstate(divide="ignore", invalid="ignore"):
            allowed = np.floor((self.target_ratio * self.total - base) / per_channel * (1 + 1e-12))
        low, high, step = self.min_channels[unit], self.channels[unit], self.granularity[unit]
        walls = np.maximum(low, np.clip(np.nan_to_num(allowed, posinf=high, neginf=low), low, high).astype(np.int64)
                           // step * step)
        return np.where(per_channel <= 0, high, walls)
