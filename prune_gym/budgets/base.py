"""What a pruned network must stay within: a cost (MACs, latency, ...) as a fraction of the unpruned one's.

A budget prices a partially pruned network from the channels each unit keeps, and gives
the env its action wall: before each step, the most channels the current unit may keep
such that, with every later unit at its minimum, the network still meets the target. The
minimum is applied inside the wall, so no episode can end over budget. A kind of budget is
a subclass in a file of its own, with a `kind` name, its `total`, `cost`, `unit_cost` and
`cost_after` (`prune_gym.budgets` registers it); the wall below works for any cost
that does not fall when a unit keeps more channels.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import ClassVar, Sequence

import numpy as np
import torch

from prune_gym.errors import PruneGymError
from prune_gym.graph import Layer, PruningGraph


class UnreachableBudget(PruneGymError):
    """A target ratio below what keeping every unit at its minimum costs."""


class Budget(ABC):
    """A cost over the units' kept channel counts, and the target ratio p an episode must meet."""

    kind: ClassVar[str]  # the name `--budget` and the observation's feature names use

    def __init__(self, graph: PruningGraph, target_ratio: float, min_keep: float, device: torch.device | str = "cpu"):
        if not 0 < min_keep <= 1:
            raise PruneGymError(f"min_keep must be in (0, 1], got {min_keep}")
        units = graph.units
        self.graph, self.units, self.layers = graph, list(units), list(graph.layers)
        self.channels = np.array([u.channels for u in units], dtype=np.int64)
        self.granularity = np.array([u.granularity for u in units], dtype=np.int64)  # counts go in these steps
        self.min_channels = self.granularity * np.maximum(
            1, np.ceil(min_keep * self.channels / self.granularity - 1e-9)).astype(np.int64)
        self.target_ratio = float(target_ratio)
        self.min_keep = min_keep
        self.round_to = 1  # see `count_in_steps`

    def check_reachable(self) -> None:
        """Refuse a target below what keeping every unit at its minimum costs (call once `total` is known)."""
        low = self.ratio(self.min_channels)
        if not (math.isfinite(self.target_ratio) and low <= self.target_ratio <= 1):
            steps = f" in multiples of {self.round_to}" if self.round_to > 1 else ""
            raise UnreachableBudget(f"target ratio {self.target_ratio} is unreachable: with at least "
                                    f"{self.min_keep:.0%} of each unit's channels kept{steps}, the reachable range is "
                                    f"[{low:.4f}, 1] of the unpruned {self.kind}")

    @property
    @abstractmethod
    def total(self) -> float:
        """The unpruned network's cost."""

    @abstractmethod
    def cost(self, kept: Sequence[int]) -> float:
        """The cost with `kept` channels in each unit."""

    @abstractmethod
    def unit_cost(self, unit: int) -> float:
        """The unpruned cost of the layers whose channels this unit controls (an observation feature)."""

    @abstractmethod
    def cost_after(self, unit: int) -> float:
        """The share of the total cost in layers that only units after `unit` decide."""

    def floor_shares(self) -> list[tuple[Layer, float]]:
        """Each layer's share of the total cost with every unit at its minimum, largest first: what no
        policy can cut. Kinds whose cost is not a sum over layers return []."""
        return []

    def ratio(self, kept: Sequence[int]) -> float:
        return self.cost(kept) / self.total

    def ratio_batch(self, kept: np.ndarray) -> np.ndarray:
        """`ratio` of each row of `kept` (episodes, units); kinds that can price many rows at once override it."""
        return np.array([self.ratio(row) for row in kept], dtype=np.float64)

    def max_keep_batch(self, unit: int, decided: np.ndarray) -> np.ndarray:
        """`max_keep` for each row of `decided` (episodes, unit); kinds with a closed-form wall override it."""
        return np.array([self.max_keep(unit, row) for row in decided], dtype=np.int64).reshape(len(decided))

    def max_keep(self, unit: int, decided: Sequence[int]) -> int:
        """The wall: most channels `unit` may keep, given earlier units' counts and later ones at their minimum."""
        kept = self.min_channels.copy()
        kept[:unit] = decided[:unit]
        budget = self.target_ratio * self.total * (1 + 1e-12)
        low, high = int(self.min_channels[unit]), int(self.channels[unit])
        while low < high:  # the largest count within budget (the minimum if none is)
            middle = (low + high + 1) // 2
            kept[unit] = middle
            low, high = (middle, high) if self.cost(kept) <= budget else (low, middle - 1)
        return self.whole_groups(unit, low)

    def count_in_steps(self, round_to: int) -> None:
        """Keep every unit's channel count a multiple of `round_to` (and of its groups), a unit whose channels are
        not such a multiple whole: widths that hardware runs faster. The minimum and the wall follow; a target
        below the new floor is refused (`UnreachableBudget`)."""
        self.round_to = round_to
        step = np.lcm(self.granularity, round_to)
        self.granularity = np.where(self.channels % step == 0, step, self.channels)
        self.min_channels = self.granularity * np.maximum(
            1, np.ceil(self.min_keep * self.channels / self.granularity - 1e-9)).astype(np.int64)
        self.check_reachable()

    def whole_groups(self, unit: int, count: int) -> int:
        """`count` rounded down to whole groups of the unit's channels, and at least its minimum."""
        return int(max(self.min_channels[unit], count // self.granularity[unit] * self.granularity[unit]))
