"""Budget kinds, by the name `gym.make('ChannelPrune-v0', budget=...)` and `--budget` take."""

from __future__ import annotations

import torch

from prune_gym.budgets.base import Budget, UnreachableBudget
from prune_gym.budgets.latency import LatencyBudget
from prune_gym.budgets.macs import MacsBudget
from prune_gym.errors import PruneGymError
from prune_gym.graph import PruningGraph

BUDGETS: dict[str, type[Budget]] = {cls.kind: cls for cls in (MacsBudget, LatencyBudget)}
DEFAULT_BUDGET = MacsBudget.kind

__all__ = ["BUDGETS", "DEFAULT_BUDGET", "Budget", "LatencyBudget", "MacsBudget", "UnreachableBudget", "make_budget"]


def make_budget(kind: str, graph: PruningGraph, target_ratio: float, min_keep: float,
                device: torch.device | str = "cpu") -> Budget:
    """The budget of `kind` over a network's units and layers (priced on `device` where that matters)."""
    if kind not in BUDGETS:
        raise PruneGymError(f"unknown budget {kind!r}; choose one of: {', '.join(BUDGETS)}")
    return BUDGETS[kind](graph, target_ratio, min_keep, device)
