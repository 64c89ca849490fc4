"""Budget kinds, by the name `gym.make('ChannelPrune-v0', budget=...)` and `--budget` take."""

from __future__ import annotations

from typing import Sequence

from prune_gym.budgets.base import Budget, UnreachableBudget
from prune_gym.budgets.macs import MacsBudget
from prune_gym.errors import PruneGymError
from prune_gym.graph import Layer, Unit

BUDGETS: dict[str, type[Budget]] = {cls.kind: cls for cls in (MacsBudget,)}
DEFAULT_BUDGET = MacsBudget.kind

__all__ = ["BUDGETS", "DEFAULT_BUDGET", "Budget", "MacsBudget", "UnreachableBudget", "make_budget"]


def make_budget(kind: str, units: Sequence[Unit], layers: Sequence[Layer], target_ratio: float,
                min_keep: float) -> Budget:
    """The budget of `kind` over the units and layers of a network."""
    if kind not in BUDGETS:
        raise PruneGymError(f"unknown budget {kind!r}; choose one of: {', '.join(BUDGETS)}")
    return BUDGETS[kind](units, layers, target_ratio, min_keep)
