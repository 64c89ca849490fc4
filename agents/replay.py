"""AMC's replay buffer on SB3's: whole episodes, scored by their final reward.

A pruning episode only learns its reward at the end, so the buffer holds an episode's
transitions back until it is over, then gives every one of them the final reward (AMC).
It stores the action the env actually took (the kept fraction after the action wall),
not the one the agent asked for, and drops an episode whose final info says
`admitted: False` (the assistant's admission rule). When sampling, it subtracts an exponential moving
average of the sampled rewards, AMC's variance-reducing baseline.

Transitions preloaded from a source run (`info["preloaded"]`) carry the source's rewards,
on the source's scale: about 0.86 at p = 0.3 against the target's 0.78 at p = 0.2, so a
critic trained on both overrates the rewritten policies. With `rebase_preloaded`, sampling
moves the preloaded rewards by the mean of the target's own rewards in the buffer less the
mean of the preloaded ones (nothing until the target has one of its own), so that both
sit on the target's scale and keep their order.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize


class EpisodeRewardReplayBuffer(ReplayBuffer):
    def __init__(self, *args, moving_average_alpha: float = 0.5, rebase_preloaded: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self.rebase_preloaded = rebase_preloaded
        self.preloaded = np.zeros(self.buffer_size, dtype=bool)  # per position: a source's transition
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
                self._preloaded()[self.pos] = bool(p_infos[0].get("preloaded", False))
                super().add(p_obs, p_next, p_action, np.asarray(reward, dtype=np.float32), p_done, p_infos)
            self._pending.clear()

    def _get_samples(self, batch_inds: np.ndarray, env: VecNormalize | None = None) -> ReplayBufferSamples:
        samples = super()._get_samples(batch_inds, env)
        offset = self.preload_offset()
        if offset:
            shift = offset * self._preloaded()[batch_inds].astype(np.float32)[:, None]
            samples = samples._replace(rewards=samples.rewards + self.to_torch(shift))
        if self.moving_average_alpha <= 0:
            return samples
        batch_mean = samples.rewards.mean().item()
        if self.moving_average is None:
            self.moving_average = batch_mean
        else:
            self.moving_average += self.moving_average_alpha * (batch_mean - self.moving_average)
        return samples._replace(rewards=samples.rewards - self.moving_average)

    def preload_offset(self) -> float:
        """What sampling adds to a preloaded reward: 0, or with `rebase_preloaded` the mean of the target's own
        rewards held less the mean of the preloaded ones (0 until both are held)."""
        if not getattr(self, "rebase_preloaded", False):
            return 0.0
        held = self.size()
        rewards, preloaded = self.rewards[:held, 0], self._preloaded()[:held]
        if preloaded.all() or not preloaded.any():
            return 0.0
        return float(rewards[~preloaded].mean() - rewards[preloaded].mean())

    def _preloaded(self) -> np.ndarray:
        """The per-position preloaded marks (a buffer pickled before they existed holds none)."""
        if not hasattr(self, "preloaded"):
            self.preloaded = np.zeros(self.buffer_size, dtype=bool)
        return self.preloaded
