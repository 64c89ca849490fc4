"""Data augmentation (the paper's section IV-C): a source run's trials, rewritten for the target.

A policy that kept a_s of a unit at ratio p_s keeps, at ratio p_t, what Eq. 2 gives:
a_t = 1 - (1 - a_s) / (1 - p_s) * (1 - p_t), the pruned fraction scaled by the ratio of
the pruned budgets. The rescaled policy is then played through the target env's unit
table and action wall without pruning (`ChannelPruneEnv.simulate`), which gives the
observations the target would show and the fractions it would really keep, so preloaded
data never breaks the target's budget. Each trial keeps its source reward: the target
has not evaluated it, and the agent's moving-average baseline absorbs the offset.
Only the same model is handled so far; across models a unit mapping is still missing.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from prune_gym.env import ChannelPruneEnv
from prune_gym.errors import PruneGymError
from prune_gym.history import Run


class Episode(NamedTuple):
    observations: np.ndarray  # (units + 1, features): before each unit, and after the last
    fractions: np.ndarray  # (units,) kept after the target's action wall
    reward: float


def rescale_actions(actions: np.ndarray, source_ratio: float, target_ratio: float) -> np.ndarray:
    """Eq. 2: kept fractions at `source_ratio` rewritten for `target_ratio`, within [0, 1]."""
    if not 0 < source_ratio < 1:
        raise PruneGymError(f"Eq. 2 needs a source ratio in (0, 1), got {source_ratio}")
    actions = np.asarray(actions, dtype=np.float64)
    return np.clip(1.0 - (1.0 - actions) / (1.0 - source_ratio) * (1.0 - target_ratio), 0.0, 1.0)


def augmented_episodes(source: Run, env: ChannelPruneEnv, last: int) -> list[Episode]:
    """The source run's last `last` trials as episodes of the target scenario."""
    scenario = source.info.scenario
    target_units = [u.producer for u in env.units]
    if scenario.unit_names != target_units:
        raise PruneGymError(f"run {source.info.run_id} pruned {scenario.model} ({scenario.n_units} units); this "
                            f"search prunes {len(target_units)} other units: data augmentation across models "
                            f"is not supported yet")
    episodes = []
    for t in range(max(0, source.n_trials - last), source.n_trials):
        fractions = rescale_actions(source.actions[t], scenario.target_ratio, env.target_ratio)
        observations, kept = env.simulate(fractions)
        episodes.append(Episode(observations, kept, float(source.rewards[t])))
    return episodes


def preload(agent: OffPolicyAlgorithm, episodes: list[Episode]) -> None:
    """Add the episodes to the agent's replay buffer, one transition per unit, as if played."""
    buffer = agent.replay_buffer
    for episode in episodes:
        steps = len(episode.fractions)
        for k in range(steps):
            done = k == steps - 1
            action = agent.policy.scale_action(episode.fractions[k:k + 1])[None]
            buffer.add(episode.observations[k][None], episode.observations[k + 1][None], action,
                       np.array([episode.reward if done else 0.0]), np.array([done]),
                       [{"kept_fraction": float(episode.fractions[k])}])
