"""`amc-ddpg`: the AMC-style DDPG baseline (`prune_gym.agents.ddpg.AMCDDPG`) as a searcher."""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from prune_gym.agents.ddpg import SIGMA_SCHEDULES, AMCDDPG
from prune_gym.agents.recorder import Trial
from prune_gym.agents.sb3 import OffPolicySearcher
from prune_gym.agents.searcher import WARMUP_CENTERS


class AMCDDPGSearcher(OffPolicySearcher):
    """AMC's recipe: 300-300 networks, 100 warm-up trials around p, truncated-normal exploration
    decaying 0.95 per trial, the final reward on every transition less a moving average.

    Its warm-up draws from the agent's own exploration generator, as `AMCDDPG.learn` would.
    """

    name = "amc-ddpg"
    algorithm = AMCDDPG
    default_warmup = 100
    settings_defaults = {"warmup_sigma": 0.1, "warmup_center": "p", "sigma0": 0.5, "sigma_decay": 0.95,
                         "sigma_min": 0.0, "sigma_schedule": "episodes", "rebase_preloaded": False,
                         "actor_lr": 1e-4, "critic_lr": 1e-3, "moving_average_alpha": 0.5, "net_arch": [300, 300],
                         "batch_size": 64, "tau": 0.01, "gamma": 1.0, "buffer_episodes": 100,
                         "invariant_actor": False}
    nullable = frozenset({"warmup_sigma"})
    choices = {"warmup_center": WARMUP_CENTERS, "sigma_schedule": SIGMA_SCHEDULES}

    def __init__(self, env: gym.Env, **kwargs: Any):
        super().__init__(env, **kwargs)
        self._attach(env)

    def _make_agent(self, env: gym.Env) -> AMCDDPG:
        return AMCDDPG("MlpPolicy", env, warmup_episodes=self.warmup, seed=self.seed, device="cpu", **self.settings)

    def learn(self, trial: Trial) -> None:
        super().learn(trial)
        self.agent.record_outcome(trial.accuracy, trial.origin == self.origin)

    def _attach(self, env: gym.Env) -> None:
        super()._attach(env)
        if hasattr(self, "agent"):  # one generator for warm-up and exploration, as in AMCDDPG itself
            self.rng = self.agent.noise_rng
            self.warmup_sigma = self.settings["warmup_sigma"]
            self.warmup_mean = self.agent.warmup_mean
