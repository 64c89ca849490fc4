"""`ppo`: Stable-Baselines3's PPO, one rollout per trial."""

from __future__ import annotations

import gymnasium as gym
from stable_baselines3 import PPO

from prune_gym.agents.sb3 import OnPolicySearcher


class PPOSearcher(OnPolicySearcher):
    """SB3's PPO, updated after each trial of its own on that trial's unit steps. With the
    default discount and GAE lambda of 1, every step's return is the trial's final reward.

    Advantages are not normalised (`normalize_advantage=False`; SB3 normalises them per
    minibatch): one trial's steps share one return R, so (R - V(s) - mean) / std cancels R
    and the policy learned from its value function's errors alone. Normalised, PPO settled on
    a ~39% policy within 40 trials (ResNet-20 at p = 0.2); unnormalised, R - V(s) carries the
    reward and its trials climbed from 44% to 59% over the first 100.
    """

    name = "ppo"
    algorithm = PPO
    settings_defaults = {"learning_rate": 3e-4, "n_epochs": 10, "gamma": 1.0, "gae_lambda": 1.0,
                         "clip_range": 0.2, "ent_coef": 0.0, "normalize_advantage": False, "net_arch": [64, 64]}

    def _make_agent(self, env: gym.Env) -> PPO:
        settings = dict(self.settings)
        net_arch = settings.pop("net_arch")
        return PPO("MlpPolicy", env, n_steps=self.n_units, batch_size=self.n_units, seed=self.seed, device="cpu",
                   policy_kwargs={"net_arch": net_arch}, **settings)
