"""AMC's replay buffer on SB3's: whole episodes, scored by their final reward.

A pruning episode only learns its reward at the end, so the buffer holds an episode's
transitions back until it is over, then gives every one of them the final reward (AMC).
It stores the action the env actually took (the kept fraction after the action wall),
not the one the agent asked for, and drops an episode whose final info says
`admitted: False` (the assistant's admission rule). When sampling, it subtracts an exponential moving
average of the sampled rewards, AMC's variance-reducing baseline.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize


class EpisodeRewardReplayBuffer(ReplayBuffer):
    def __init__(self, *args, moving_average_alpha: float = 0.5, **kwargs):
        super().__init__(*args, **kwargs)
        if self.n_envs != 1:
            raise ValueError("EpisodeRewardReplayBuffer follows one episode at a time: use a single env")
        self.moving_average_alpha = moving_average_alpha
        self.moving_average: float | None = None
        self._pending: list[tuple[np.ndarray, ...]] = []

    def add(self, obs: np.ndarray, next_obs: np.ndarray, action: np.ndarray, reward: np.ndarray,
            done: np.ndarray, infos: list[dict[str, Any]]) -> None:
        kept = infos[0].get("kept_fraction")
        if kept is not None:  # the action after the wall, in the buffer's [-1, 1] scale
            low, high = self.action_space.low, self.action_space.high
            action = np.asarray(2.0 * (kept - low) / (high - low) - 1.0, dtype=np.float32).reshape(action.shape)
        self._pending.append((obs, next_obs, action, done, infos))
        if done[0] and not infos[0].get("admitted", True):
            self._pending.clear()
        elif done[0]:
            for p_obs, p_next, p_action, p_done, p_infos in self._pending:
                super().add(p_obs, p_next, p_action, np.asarray(reward, dtype=np.float32), p_done, p_infos)
            self._pending.clear()

    def _get_samples(self, batch_inds: np.ndarray, env: VecNormalize | None = None) -> ReplayBufferSamples:
        samples = super()._get_samples(batch_inds, env)
        if self.moving_average_alpha <= 0:
            return samples
        batch_mean = samples.rewards.mean().item()
        if self.moving_average is None:
            self.moving_average = batch_mean
        else:
            self.moving_average += self.moving_average_alpha * (batch_mean - self.moving_average)
        return samples._replace(rewards=samples.rewards - self.moving_average)
