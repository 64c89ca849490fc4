"""`td3`: Stable-Baselines3's TD3, its replay buffer holding the final reward on every transition."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from stable_baselines3 import TD3
from stable_baselines3.common.noise import NormalActionNoise

from prune_gym.agents.invariant import InvariantPolicy
from prune_gym.agents.sb3 import OffPolicySearcher
from prune_gym.env import OBSERVATION_FEATURES


class TD3Searcher(OffPolicySearcher):
    """SB3's TD3 with its defaults, Gaussian exploration noise of `action_sigma`; `invariant_actor`
    makes its actor predict a / p (the paper's network augmentation)."""

    name = "td3"
    algorithm = TD3
    default_warmup = 10
    settings_defaults = {"learning_rate": 1e-3, "batch_size": 256, "tau": 0.005, "gamma": 0.99,
                         "buffer_size": 1_000_000, "policy_delay": 2, "target_policy_noise": 0.2,
                         "action_sigma": 0.1, "net_arch": [400, 300], "moving_average_alpha": 0.0,
                         "invariant_actor": False}

    def _make_agent(self, env: gym.Env) -> TD3:
        settings = self._off_policy_defaults()
        sigma, invariant = settings.pop("action_sigma"), settings.pop("invariant_actor")
        policy = "MlpPolicy"
        if invariant:
            policy = InvariantPolicy
            settings["policy_kwargs"]["ratio_index"] = OBSERVATION_FEATURES.index("target_ratio")
        noise = NormalActionNoise(np.zeros(1), np.full(1, sigma)) if sigma > 0 else None
        return TD3(policy, env, action_noise=noise, seed=self.seed, device="cpu", **settings)
