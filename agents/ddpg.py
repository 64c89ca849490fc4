"""The AMC-style DDPG baseline, built from SB3's extension points.

What differs from SB3's DDPG, each as in AMC (He et al., ECCV 2018):
* warm-up by episodes: the first `warmup_episodes` episodes act at random, without training;
* exploration: a truncated normal around the actor's action, within the action bounds,
  with sigma = sigma0 * decay^(episode - warm-up) (never under `sigma_min`, 0 in AMC: a
  transfer starts without warm-up, and its noise has decayed to 0.02 by trial 60). With
  `sigma_schedule="progress"` the noise decays instead once per trial in which the actor
  played within half a point of the best accuracy found so far: it narrows as the actor
  shows it has found the good policies, however many trials that takes;
* the episode's final reward on every transition and a moving-average baseline
  (`EpisodeRewardReplayBuffer`), discount 1, one gradient step per env step after each
  episode, a replay buffer that holds the last 100 episodes (AMC's `rmsize` per layer);
* separate learning rates for actor (1e-4) and critic (1e-3): SB3 sets one rate on both.

With `invariant_actor=True` the actor predicts the invariant a / p instead of the action
(the paper's network augmentation, `prune_gym.agents.invariant`). It trains with SB3's
`learn()` like any SB3 algorithm; the search drives it step by step instead, through
`prune_gym.agents.searchers.amc_ddpg`.

One default departs from AMC: its warm-up draws each action uniformly from [0, 1]. At a
tight budget (p <= 0.3) that spends the budget on the first units, the action wall then
cuts the last ones to the minimum, and the critic learns from collapsed networks only.
Warm-up actions are drawn instead from a truncated normal around the target ratio p
(`warmup_sigma`, 0.1), an alternative that AMC's own search script carries commented
out: those trials cover the policies near uniform that the search must beat (figures in
benchmarks/RESULTS.md). `warmup_sigma=None` restores AMC's uniform draw. Where a layer's
MACs grow with two units' fractions (the residual streams as units, a depthwise net's
pointwise convs), fractions around p spend about p^2 of the MACs: `warmup_center="uniform"`
draws around the fraction that, kept in every unit, fills the budget instead.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3 import DDPG
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.utils import update_learning_rate

from prune_gym.agents.invariant import InvariantPolicy
from prune_gym.agents.replay import EpisodeRewardReplayBuffer
from prune_gym.agents.searcher import truncated_normal, warmup_action, warmup_center
from prune_gym.env import OBSERVATION_FEATURES

SIGMA_SCHEDULES = ("episodes", "progress")  # what the exploration noise decays with (the module's docstring)
NEAR_BEST = 0.005  # an actor trial this close to the best accuracy so far counts as progress


class AMCDDPG(DDPG):
    """DDPG with AMC's exploration, reward handling and learning rates.

    `episode_length` is the number of steps per episode (the env's units, by default).
    """

    def __init__(self, policy: str | type, env: Any, episode_length: int | None = None, *, warmup_episodes: int = 100,
                 warmup_sigma: float | None = 0.1, warmup_center: str = "p", sigma0: float = 0.5,
                 sigma_decay: float = 0.95, sigma_min: float = 0.0, sigma_schedule: str = "episodes",
                 rebase_preloaded: bool = False,
                 actor_lr: float = 1e-4, critic_lr: float = 1e-3, moving_average_alpha: float = 0.5,
                 net_arch: list[int] | None = None, batch_size: int = 64, tau: float = 0.01, gamma: float = 1.0,
                 buffer_episodes: int = 100, invariant_actor: bool = False, seed: int | None = None,
                 **kwargs: Any):
        self.episode_length = episode_length or _unit_count(env)
        self.warmup_episodes = warmup_episodes
        self.warmup_sigma = warmup_sigma
        self.buffer_episodes = buffer_episodes
        if sigma_schedule not in SIGMA_SCHEDULES:
            raise ValueError(f"unknown sigma_schedule {sigma_schedule!r}; choose one of: {', '.join(SIGMA_SCHEDULES)}")
        self.sigma0, self.sigma_decay, self.sigma_min = sigma0, sigma_decay, sigma_min
        self.sigma_schedule = sigma_schedule
        self.best_accuracy, self.near_best_trials = 0.0, 0  # the progress the "progress" schedule counts
        self.actor_lr, self.critic_lr = actor_lr, critic_lr
        self.noise_rng = np.random.default_rng(seed)
        self.warmup_mean = _warmup_center(env, warmup_center)
        policy_kwargs = {"net_arch": net_arch or [300, 300], **kwargs.pop("policy_kwargs", {})}
        if invariant_actor:
            policy = InvariantPolicy
            policy_kwargs["ratio_index"] = OBSERVATION_FEATURES.index("target_ratio")
        super().__init__(
            policy, env, learning_rate=critic_lr, buffer_size=buffer_episodes * self.episode_length,
            learning_starts=warmup_episodes * self.episode_length, batch_size=batch_size, tau=tau, gamma=gamma,
            train_freq=(1, "episode"), gradient_steps=-1, action_noise=None,
            replay_buffer_class=EpisodeRewardReplayBuffer,
            replay_buffer_kwargs={"moving_average_alpha": moving_average_alpha, "rebase_preloaded": rebase_preloaded},
            policy_kwargs=policy_kwargs, seed=seed, **kwargs)

    @property
    def episodes_done(self) -> int:
        return self.num_timesteps // self.episode_length

    @property
    def in_warmup(self) -> bool:
        return self.episodes_done < self.warmup_episodes

    @property
    def sigma(self) -> float:
        """The exploration noise's standard deviation for the current episode."""
        if getattr(self, "sigma_schedule", "episodes") == "progress":  # agents saved before had no schedule
            steps = self.near_best_trials
        else:
            steps = max(0, self.episodes_done - self.warmup_episodes)
        return max(self.sigma0 * self.sigma_decay ** steps, getattr(self, "sigma_min", 0.0))

    def record_outcome(self, accuracy: float, by_actor: bool) -> None:
        """Take note of a finished trial for the "progress" schedule: the best accuracy so far, and whether the
        actor played within half a point of it."""
        self.best_accuracy = max(getattr(self, "best_accuracy", 0.0), accuracy)
        if by_actor and accuracy >= self.best_accuracy - NEAR_BEST:
            self.near_best_trials = getattr(self, "near_best_trials", 0) + 1

    def _sample_action(self, learning_starts: int, action_noise: Any = None,
                       n_envs: int = 1) -> tuple[np.ndarray, np.ndarray]:
        low, high = self.action_space.low, self.action_space.high
        shape = (n_envs, *self.action_space.shape)
        if self.in_warmup:
            action = warmup_action(self.noise_rng, self.warmup_mean, self.warmup_sigma, shape)
        else:
            mean, _ = self.predict(self._last_obs, deterministic=True)
            action = truncated_normal(self.noise_rng, mean, self.sigma, low, high)
        action = action.astype(np.float32)
        return action, self.policy.scale_action(action)

    def _update_learning_rate(self, optimizers: Any) -> None:
        self.logger.record("train/actor_learning_rate", self.actor_lr)
        self.logger.record("train/critic_learning_rate", self.critic_lr)
        update_learning_rate(self.actor.optimizer, self.actor_lr)
        update_learning_rate(self.critic.optimizer, self.critic_lr)


def _unit_count(env: gym.Env | VecEnv) -> int:
    """Steps per episode of a ChannelPrune env, wrapped or inside an SB3 VecEnv."""
    units = env.get_attr("units")[0] if isinstance(env, VecEnv) else env.unwrapped.units
    return len(units)


def _warmup_center(env: gym.Env | VecEnv, center: str) -> float:
    """`warmup_center` of a ChannelPrune env, wrapped or inside an SB3 VecEnv."""
    return warmup_center(env.get_attr("budget")[0] if isinstance(env, VecEnv) else env.unwrapped.budget, center)
