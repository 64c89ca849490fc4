"""Budget kinds, by the name `gym.make('ChannelPrune-v0', budget=...)` and `--budget` take.

Every module here is imported and each `Budget` subclass it defines with a `kind` is
registered, so a new kind is one new file; a kind of your own, defined anywhere, joins them
with `register_budget` (before the env or the command line is built with it).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import torch

from prune_gym.budgets.base import Budget, UnreachableBudget
from prune_gym.budgets.latency import LatencyBudget
from prune_gym.budgets.macs import MacsBudget
from prune_gym.errors import PruneGymError
from prune_gym.graph import PruningGraph


def _discover() -> dict[str, type[Budget]]:
    found: dict[str, type[Budget]] = {}
    for module_info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Budget) and cls.__module__ == module.__name__ and getattr(cls, "kind", None):
                found[cls.kind] = cls
    return dict(sorted(found.items(), key=lambda item: item[0] != MacsBudget.kind))  # the default first


BUDGETS: dict[str, type[Budget]] = _discover()
DEFAULT_BUDGET = MacsBudget.kind

__all__ = ["BUDGETS", "DEFAULT_BUDGET", "Budget", "LatencyBudget", "MacsBudget", "UnreachableBudget", "make_budget",
           "register_budget"]


def make_budget(kind: str, graph: PruningGraph, target_ratio: float, min_keep: float,
                device: torch.device | str = "cpu", round_to: int = 1) -> Budget:
    """The budget of `kind` over a network's units and layers (priced on `device` where that matters), each
    unit's count a multiple of `round_to` (`Budget.count_in_steps`)."""
    if kind not in BUDGETS:
        raise PruneGymError(f"unknown budget {kind!r}; choose one of: {', '.join(BUDGETS)}")
    budget = BUDGETS[kind](graph, target_ratio, min_keep, device)
    if round_to != 1:
        budget.count_in_steps(round_to)
    return budget


def register_budget(cls: type[Budget]) -> type[Budget]:
    """Make `cls` available by its `kind` (usable as a class decorator); a kind is registered once."""
    if not (isinstance(cls, type) and issubclass(cls, Budget)) or not getattr(cls, "kind", None):
        raise PruneGymError(f"register_budget takes a Budget subclass with a kind, got {cls!r}")
    if BUDGETS.get(cls.kind, cls) is not cls:
        raise PruneGymError(f"a budget of kind {cls.kind!r} is already registered: {BUDGETS[cls.kind]}")
    BUDGETS[cls.kind] = cls
    return cls
