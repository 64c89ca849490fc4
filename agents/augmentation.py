"""Data augmentation (the paper's section IV-C): a source run's trials, rewritten for the target.

A policy that kept a_s of a unit at ratio p_s keeps, at ratio p_t, what Eq. 2 gives:
a_t = 1 - (1 - a_s) / (1 - p_s) * (1 - p_t), the pruned fraction scaled by the ratio of
the pruned budgets. The rescaled policy is then played through the target env's unit
table and action wall without pruning (`ChannelPruneEnv.simulate`), which gives the
observations the target would show and the fractions it would really keep, so preloaded
data never breaks the target's budget. Each trial keeps its source reward: the target
has not evaluated it (an off-policy agent can re-base it on the target's own rewards as
they come: `EpisodeRewardReplayBuffer`).

Eq. 2 moves every unit by the same share of its pruned part, which leaves a unit the
source pruned hard near zero: the 10 best trials of ResNet-20's league runs at 0.3,
rewritten that way for 0.2, fell as low as 64.7%, and never under 75.3% when scaled as a
whole (`benchmarks/probes/rescale_probe.py`). `rescale="budget"` keeps the policy's shape so: the
fractions, proportional to the source's, scaled by the one factor that fills the target's
budget (`budget_filling_policy`). `rescale="power"` lies between the two: the fractions, raised
to the power ln p_t / ln p_s, then filled to the budget. It keeps the source's ordering of the
units and spreads them as Eq. 2 does near the uniform policy (a unit at half the typical
fraction keeps a fifth of it from 0.5 to 0.2), without sending any to zero.

Across models, each target unit first copies the fraction of its source unit
(`prune_gym.agents.unit_mapping`); the target's critical units are set to keep every
channel and the others are lowered (or raised) by one common factor until the policy
meets the source's ratio on the target's MACs. Eq. 2 and the target's wall follow.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from prune_gym.agents.unit_mapping import critical_units, map_units
from prune_gym.budgets import Budget
from prune_gym.env import ChannelPruneEnv
from prune_gym.errors import PruneGymError
from prune_gym.history import Run, Scenario
from prune_gym.policies import budget_filling_policy


class Episode(NamedTuple):
    observations: np.ndarray  # (units + 1, features): before each unit, and after the last
    fractions: np.ndarray  # (units,) kept after the target's action wall
    reward: float
    accuracy: float


def rescale_actions(actions: np.ndarray, source_ratio: float, target_ratio: float) -> np.ndarray:
    """Eq. 2: kept fractions at `source_ratio` rewritten for `target_ratio`, within [0, 1]."""
    if not 0 < source_ratio < 1:
        raise PruneGymError(f"Eq. 2 needs a source ratio in (0, 1), got {source_ratio}")
    actions = np.asarray(actions, dtype=np.float64)
    return np.clip(1.0 - (1.0 - actions) / (1.0 - source_ratio) * (1.0 - target_ratio), 0.0, 1.0)


def cross_model_policy(fractions: np.ndarray, source: Scenario, target: Scenario, budget: Budget) -> np.ndarray:
    """A policy of the source model as one of the target model (`budget`'s) at the source's ratio."""
    if source.feature_names != target.feature_names:
        raise PruneGymError(f"{source.model}'s units are described by {source.feature_names}, {target.model}'s by "
                            f"{target.feature_names}: their units cannot be mapped")
    mapped = np.asarray(fractions, dtype=np.float64)[map_units(source, target)]
    log_weights = np.log(np.maximum(mapped, 1e-6))
    return np.asarray(budget_filling_policy(budget, log_weights, source.target_ratio, critical_units(target)))


RESCALES = ("eq2", "budget", "power")  # how a source policy is rewritten for the target ratio (the module's docstring)


def rescale_policy(fractions: np.ndarray, source_ratio: float, env: ChannelPruneEnv,
                   rescale: str = "eq2") -> np.ndarray:
    """A policy at `source_ratio` rewritten for `env`'s ratio: by Eq. 2, or scaled as a whole (after a power, for
    "power") to fill its budget."""
    if rescale == "eq2":
        return rescale_actions(fractions, source_ratio, env.target_ratio)
    if rescale in ("budget", "power"):
        power = np.log(env.target_ratio) / np.log(source_ratio) if rescale == "power" else 1.0
        return np.asarray(budget_filling_policy(env.budget, power * np.log(np.maximum(fractions, 1e-6))))
    raise PruneGymError(f"unknown rescale {rescale!r}; choose one of: {', '.join(RESCALES)}")


def augmented_episodes(source: Run, env: ChannelPruneEnv, target: Scenario, last: int,
                       rescale: str = "eq2") -> list[Episode]:
    """The source run's last `last` trials as episodes of the target scenario (`env`'s), rewritten by `rescale`."""
    scenario = source.info.scenario
    same_model = scenario.unit_names == target.unit_names
    episodes = []
    for t in range(max(0, source.n_trials - last), source.n_trials):
        fractions = source.actions[t]
        if not same_model:
            fractions = cross_model_policy(fractions, scenario, target, env.budget)
        fractions = rescale_policy(fractions, scenario.target_ratio, env, rescale)
        observations, kept = env.simulate(fractions)
        episodes.append(Episode(observations, kept, float(source.rewards[t]), float(source.accuracies[t])))
    return episodes


def add_episode(agent: OffPolicyAlgorithm, observations: np.ndarray, fractions: np.ndarray, reward: float,
                preloaded: bool = False) -> None:
    """One episode into the agent's replay buffer: `observations` before each unit and after the last,
    the `fractions` kept, the final `reward` on the last step; `preloaded`: a source's, not the target's."""
    steps = len(fractions)
    for k in range(steps):
        done = k == steps - 1
        action = agent.policy.scale_action(np.asarray(fractions[k:k + 1], dtype=np.float32))[None]
        agent.replay_buffer.add(observations[k][None], observations[k + 1][None], action,
                                np.array([reward if done else 0.0]), np.array([done]),
                                [{"kept_fraction": float(fractions[k]), "preloaded": preloaded}])
