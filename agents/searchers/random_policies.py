"""`random`: every trial a random policy around p, the distribution of the baseline's warm-up."""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym

from prune_gym.agents.searcher import WARMUP_CENTERS, PolicySearcher, warmup_action, warmup_center


class RandomSearcher(PolicySearcher):
    """Each unit keeps a fraction drawn from a normal around p (`sigma`) truncated to [0, 1];
    `center=uniform` draws around the fraction that, kept in every unit, fills the budget
    (see `warmup_center`); `spread=uniform` draws uniformly from [0, 1], AMC's warm-up, whatever
    the center.
    Learns nothing."""

    name = "random"
    settings_defaults = {**PolicySearcher.settings_defaults, "spread": "normal", "sigma": 0.1, "center": "p"}
    choices = {"spread": ("normal", "uniform"), "center": WARMUP_CENTERS}

    def _attach(self, env: gym.Env) -> None:
        super()._attach(env)
        self.center = warmup_center(env.unwrapped.budget, self.settings["center"])

    def _propose(self, trial: int) -> Sequence[float]:
        sigma = self.settings["sigma"] if self.settings["spread"] == "normal" else None
        return [float(warmup_action(self.rng, self.center, sigma)[0, 0]) for _ in range(self.n_units)]
