"""Reference policies that searches are compared with, and playing a policy through the env."""

from __future__ import annotations

from typing import Any, Sequence

import gymnasium as gym
import numpy as np

from prune_gym.budgets import Budget


def play(env: gym.Env, fractions: Sequence[float]) -> dict[str, Any]:
    """Run one episode keeping `fractions[k]` of unit k's channels; returns the final info."""
    units = env.unwrapped.units
    if len(fractions) != len(units):
        raise ValueError(f"a policy needs one fraction per unit: {len(units)}, got {len(fractions)}")
    env.reset()
    for fraction in fractions:
        _, _, terminated, _, info = env.step(np.array([fraction], dtype=np.float32))
    assert terminated
    return info


def uniform_policy(budget: Budget) -> list[float]:
    """The largest single fraction which, kept in every unit, meets the budget."""
    return budget_filling_policy(budget, np.zeros(len(budget.channels)))


def budget_filling_policy(budget: Budget, log_weights: np.ndarray, ratio: float | None = None,
                          whole: np.ndarray | None = None) -> list[float]:
    """Fractions proportional to exp(log_weights), scaled by the largest factor that meets the ratio.

    `ratio` is the budget's target unless given; units where `whole` is true keep every channel.
    """
    weights = np.exp(log_weights)
    whole = np.zeros(len(weights), dtype=bool) if whole is None else np.asarray(whole, dtype=bool)
    ratio = budget.target_ratio if ratio is None else ratio

    def fractions(scale: float) -> np.ndarray:
        return np.where(whole, 1.0, np.clip(scale * weights, 0, 1))

    def counts(scale: float) -> np.ndarray:
        groups = np.round(fractions(scale) * budget.channels / budget.granularity)
        return np.clip(groups * budget.granularity, budget.min_channels, budget.channels)

    low, high = 0.0, 1.0 / weights[~whole].min() if (~whole).any() else 0.0
    for _ in range(40):
        mid = (low + high) / 2
        low, high = (mid, high) if budget.ratio(counts(mid)) <= ratio else (low, mid)
    return fractions(low).tolist()


def random_policy(n_units: int, rng: np.random.Generator) -> list[float]:
    """Uniform random fractions; the env's action wall keeps the episode within budget."""
    return rng.uniform(0.0, 1.0, n_units).tolist()
