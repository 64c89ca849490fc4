"""Native vector envs: N episodes of one scenario in one process, played in lockstep with numpy.

`gym.make_vec("ChannelPrune-v0", num_envs=N)` builds `ChannelPruneVectorEnv` (Gymnasium's
`vector_entry_point`); `vectorization_mode="sync"` or `"async"` still give N separate envs.
What the N episodes share is built once: the workload, the units, the budget, the
calibration activations and the LASSO rankings. Each episode keeps its own working copy of
the network, which it prunes and refits as ChannelPrune-v0 does, so the same actions give
the same episodes as N separate envs. `LockstepVectorEnv` holds what every native vector env
does alike (the surrogate tasks' too): the walls, observations and autoreset.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector.utils import batch_space

from prune_gym.env import ChannelPruneEnv
from prune_gym.errors import PruneGymError
from prune_gym.pruner import EpisodePruner, WorkingCopy
from prune_gym.rules import EpisodeRules


class LockstepVectorEnv(gym.vector.VectorEnv):
    """`num_envs` episodes of one scenario whose channels `rules` keep, played in lockstep.

    Every episode has one step per unit, so all end together; the step after the end resets
    them all and ignores its actions (Gymnasium's next-step autoreset). Rewards, terminations
    and truncations are arrays of shape (num_envs,); the last step's info holds `accuracy`,
    `macs_ratio` and `policy`, one row per episode. A subclass says how episodes start
    (`_start_episodes`), prune (`_prune`) and are scored (`_score`).

    :param rules: the scenario's units, budget and observations
    :param num_envs: the episodes played at once
    """

    metadata = {"render_modes": [], "autoreset_mode": gym.vector.AutoresetMode.NEXT_STEP}

    def __init__(self, rules: EpisodeRules, num_envs: int):
        if isinstance(num_envs, bool) or not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise PruneGymError(f"num_envs must be a whole number, 1 or more, got {num_envs!r}")
        self.rules, self.num_envs = rules, int(num_envs)
        self.single_observation_space = gym.spaces.Box(0.0, 1.0, (len(rules.features),), np.float32)
        self.single_action_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.action_space = batch_space(self.single_action_space, self.num_envs)
        self._kept = np.zeros((self.num_envs, 0), np.int64)
        self._ended = True

    # ------------------------------------------------------------------ hooks

    def _start_episodes(self) -> None:
        """Called by `reset`: put every episode's network back to the unpruned one."""

    def _prune(self, unit: int, kept: np.ndarray) -> None:
        """Called by `step` once `kept`, each episode's channel count for `unit`, is decided within the wall."""

    def _score(self, kept: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Called by the last step with every unit's counts (num_envs, units): each episode's accuracy and reward."""
        raise NotImplementedError

    # ------------------------------------------------------------------ gym API

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._start_episodes()
        self._kept = np.zeros((self.num_envs, 0), np.int64)
        self._ended = False
        return self._observe(np.ones(self.num_envs)), {}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        actions = np.asarray(actions, dtype=np.float64)
        if actions.size != self.num_envs or not np.isfinite(actions).all():
            raise ValueError(f"actions must be finite, one per episode, shape ({self.num_envs}, 1), got "
                             f"{np.shape(actions)}")
        done = np.zeros(self.num_envs, np.bool_)
        if self._ended:  # next-step autoreset: this step only starts the new episodes
            observation, _ = self.reset()
            return observation, np.zeros(self.num_envs), done, done.copy(), {}
        units, k = self.rules.units, self._kept.shape[1]
        kept = self.rules.kept_channels_batch(k, actions.reshape(self.num_envs), self._kept)
        self._prune(k, kept)
        self._kept = np.concatenate([self._kept, kept[:, None]], axis=1)
        rewards, info = np.zeros(self.num_envs), {}
        if self._kept.shape[1] == len(units):
            self._ended = True
            done[:] = True
            accuracies, rewards = self._score(self._kept)
            info = {"accuracy": accuracies, "macs_ratio": self.rules.macs_budget.ratio_batch(self._kept),
                    "policy": self._kept / self.rules.channels}
        return self._observe(kept / units[k].channels), rewards, done, np.zeros(self.num_envs, np.bool_), info

    def _observe(self, previous: np.ndarray) -> np.ndarray:
        return self.rules.observation_batch(self._kept.shape[1], self._kept, previous)


class ChannelPruneVectorEnv(LockstepVectorEnv):
    """`num_envs` episodes of ChannelPrune-v0 in one process, the N pruned networks scored one after the other
    on the env's device.

    :param num_envs: the episodes played at once
    :param env_kwargs: ChannelPrune-v0's arguments (`ChannelPruneEnv`), the same for every episode
    """

    def __init__(self, num_envs: int = 1, **env_kwargs: Any):
        self.env = ChannelPruneEnv(**env_kwargs)
        super().__init__(self.env.rules, num_envs)
        self._copies = [WorkingCopy(self.env.graph) for _ in range(self.num_envs)]
        self._pruners: list[EpisodePruner] = []

    def _start_episodes(self) -> None:
        self._pruners = [self.env.new_pruner(c) for c in self._copies]

    def _prune(self, unit: int, kept: np.ndarray) -> None:
        for pruner, n_keep in zip(self._pruners, kept):
            pruner.prune(self.rules.units[unit], int(n_keep))

    def _score(self, kept: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        scores = []
        for pruner, counts in zip(self._pruners, kept):
            pruner.finish()
            scores.append(self.env.score(pruner.network, counts.tolist()))
        accuracies, rewards = np.array(scores).T
        return accuracies, rewards
