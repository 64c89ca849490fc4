"""What an episode's actions become: kept channels within the budget's wall, and what the agent observes.

The arithmetic of ChannelPrune-v0 apart from the network: how a kept fraction turns into
whole channels between a unit's minimum and the action wall, and the observation before
each unit. The env that prunes (`prune_gym.env`) and the ones whose reward a surrogate
predicts (`prune_gym.surrogate`) share it, so their episodes keep the same channels. The
`*_batch` methods play many episodes at once, one row each, for the vector envs.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from prune_gym.budgets import MacsBudget
from prune_gym.budgets.base import Budget
from prune_gym.graph import PruningGraph

STATIC_FEATURES = ("layer_type", "in_channels", "out_channels", "kernel", "stride", "feature_map",
                   "depthwise_members")


def observation_features(budget: str = "macs") -> tuple[str, ...]:
    """The observation's columns: the budget's three are named by its kind (unit_macs, macs_reduced, ...)."""
    return ("unit_index", *STATIC_FEATURES, f"unit_{budget}", f"{budget}_reduced", f"{budget}_rest",
            "previous_action", "target_ratio")


def check_action(action: Any) -> float:
    """A kept fraction from a number or an array of shape (1,), clipped to [0, 1]; ValueError for anything else."""
    try:
        array = np.asarray(action, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"action must be a number or an array of shape (1,), got {action!r}") from exc
    if array.size != 1 or array.ndim > 1:
        raise ValueError(f"action must have shape (1,) (the kept fraction), got shape {array.shape}")
    value = float(array.reshape(()))
    if not math.isfinite(value):
        raise ValueError(f"action must be finite, got {value}")
    return min(max(value, 0.0), 1.0)


class EpisodeRules:
    """The units of `graph` and the `budget` they must meet: kept channels, walls and observations.

    :param graph: the network's prunable units and layers (`prune_gym.graph.discover_units`)
    :param budget: the budget the episodes meet, built on `graph`
    """

    def __init__(self, graph: PruningGraph, budget: Budget):
        self.graph, self.units, self.budget = graph, graph.units, budget
        # MACs are reported whatever the budget is (target 1: any policy meets it).
        self.macs_budget = budget if isinstance(budget, MacsBudget) else MacsBudget(graph, 1.0, budget.min_keep)
        self.features = observation_features(budget.kind)
        self.channels = np.array([u.channels for u in self.units], dtype=np.int64)
        self._static = self._static_table()
        self._rest = np.array([budget.cost_after(k) for k in range(len(self.units))])

    # ------------------------------------------------------------------ one episode

    def kept_channels(self, k: int, fraction: float, kept: Sequence[int]) -> tuple[int, int]:
        """Channels unit k keeps for the kept fraction asked for, between its minimum and the wall; and the wall."""
        wall = self.budget.max_keep(k, kept)
        return int(np.clip(self.asked_channels(k, fraction), self.budget.min_channels[k], wall)), wall

    def asked_channels(self, k: int, fraction: float) -> int:
        """The kept fraction asked for unit k in channels, before its minimum and the wall."""
        step = int(self.budget.granularity[k])  # whole groups of a grouped conv, multiples of round_to
        return round(fraction * self.units[k].channels / step) * step

    def asked_ratio(self, fractions: Sequence[float]) -> float:
        """The budget's ratio a policy asks for, each unit's fraction in whole channels (at least its minimum)
        as an episode takes it, before the action wall cuts what would break the budget."""
        self._check_length(fractions)
        return self.budget.ratio([int(np.clip(self.asked_channels(k, check_action(f)), self.budget.min_channels[k],
                                              unit.channels)) for k, (f, unit) in enumerate(zip(fractions, self.units))])

    def observation(self, step: int, kept: Sequence[int], previous: float) -> np.ndarray:
        """The observation before deciding unit `step`, with `kept` channels in the units before it."""
        k = min(step, len(self.units) - 1)
        kept_or_whole = list(kept) + [u.channels for u in self.units[len(kept):]]
        reduced = 1.0 - self.budget.ratio(kept_or_whole)
        rest = self._rest[k] if step < len(self.units) else 0.0
        obs = [k / max(1, len(self.units) - 1), *self._static[k], reduced, rest, previous, self.budget.target_ratio]
        return np.clip(np.asarray(obs, dtype=np.float32), 0.0, 1.0)

    def simulate(self, fractions: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """What an episode playing `fractions` would observe and keep: the observations before each unit and after
        the last, (units + 1, features), and the fractions kept after the action wall, (units,)."""
        self._check_length(fractions)
        kept: list[int] = []
        observations, previous = [], 1.0
        for k, fraction in enumerate(fractions):
            observations.append(self.observation(k, kept, previous))
            n_keep, _ = self.kept_channels(k, check_action(fraction), kept)
            kept.append(n_keep)
            previous = n_keep / self.units[k].channels
        observations.append(self.observation(len(self.units), kept, previous))
        return np.stack(observations), np.array([n / u.channels for n, u in zip(kept, self.units)], np.float32)

    def unit_table(self) -> tuple[list[str], list[str], np.ndarray]:
        """Unit names, observation feature names, and each unit's observation before any pruning (the dynamic
        fields of an episode that kept every channel so far): the scenario's unit table in the history."""
        table = np.stack([self.observation(k, [u.channels for u in self.units[:k]], 1.0)
                          for k in range(len(self.units))])
        return [u.producer for u in self.units], list(self.features), table

    def final_info(self, kept: Sequence[int]) -> dict[str, Any]:
        """The budget's part of the last step's info: MACs (whatever the budget), the policy and the kept counts."""
        macs = self.macs_budget.cost(kept)
        info = {"macs": macs, "macs_ratio": macs / self.macs_budget.total,
                "policy": [n / u.channels for n, u in zip(kept, self.units)], "kept_channels_per_unit": list(kept)}
        info.setdefault(f"{self.budget.kind}_ratio", self.budget.ratio(kept))  # e.g. latency_ratio
        return info

    # ------------------------------------------------------------------ many episodes at once

    def kept_channels_batch(self, k: int, fractions: np.ndarray, kept: np.ndarray) -> np.ndarray:
        """`kept_channels` for one row of `kept` (episodes, k) per episode, fractions clipped to [0, 1]."""
        step = self.budget.granularity[k]
        asked = np.round(np.clip(np.asarray(fractions, np.float64), 0.0, 1.0) * self.channels[k] / step).astype(np.int64) * step
        walls = self.budget.max_keep_batch(k, kept)
        return np.clip(asked, self.budget.min_channels[k], walls)

    def observation_batch(self, step: int, kept: np.ndarray, previous: np.ndarray) -> np.ndarray:
        """`observation` for one row of `kept` (episodes, step) and of `previous` (episodes,) per episode."""
        n, k = len(kept), min(step, len(self.units) - 1)
        kept_or_whole = np.concatenate([kept, np.broadcast_to(self.channels[kept.shape[1]:], (n, len(self.units)
                                                                                              - kept.shape[1]))], 1)
        obs = np.empty((n, len(self.features)), np.float64)
        obs[:, 0] = k / max(1, len(self.units) - 1)
        obs[:, 1:1 + self._static.shape[1]] = self._static[k]
        obs[:, -4] = 1.0 - self.budget.ratio_batch(kept_or_whole)
        obs[:, -3] = self._rest[k] if step < len(self.units) else 0.0
        obs[:, -2] = previous
        obs[:, -1] = self.budget.target_ratio
        return np.clip(obs.astype(np.float32), 0.0, 1.0)

    # ------------------------------------------------------------------ helpers

    def _check_length(self, fractions: Sequence[float]) -> None:
        if len(fractions) != len(self.units):
            raise ValueError(f"a policy needs one fraction per unit: {len(self.units)}, got {len(fractions)}")

    def _static_table(self) -> np.ndarray:
        """Per-unit static features and unpruned cost, min-max normalised over the units."""
        raw = np.array([[u.features[f] for f in STATIC_FEATURES] + [self.budget.unit_cost(u.index)]
                        for u in self.units], dtype=np.float64)
        low, span = raw.min(0), raw.max(0) - raw.min(0)
        return np.where(span > 0, (raw - low) / np.where(span > 0, span, 1), 0.0)
