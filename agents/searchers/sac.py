"""`sac`: Stable-Baselines3's SAC, its replay buffer holding the final reward on every transition."""

from __future__ import annotations

import gymnasium as gym
from stable_baselines3 import SAC

from prune_gym.agents.sb3 import OffPolicySearcher


class SACSearcher(OffPolicySearcher):
    """SB3's SAC with its defaults: it explores by its own stochastic policy and entropy bonus."""

    name = "sac"
    algorithm = SAC
    default_warmup = 10
    settings_defaults = {"learning_rate": 3e-4, "batch_size": 256, "tau": 0.005, "gamma": 0.99,
                         "buffer_size": 1_000_000, "net_arch": [256, 256], "moving_average_alpha": 0.0}

    def _make_agent(self, env: gym.Env) -> SAC:
        return SAC("MlpPolicy", env, seed=self.seed, device="cpu", **self._off_policy_defaults())
