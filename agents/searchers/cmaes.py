"""`cmaes`: CMA-ES over the per-unit kept fractions, Optuna's sampler on the `cmaes` package."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import optuna
from optuna.trial import TrialState

from prune_gym.agents.augmentation import Episode
from prune_gym.agents.optuna_search import OptunaSearcher


class CMAESSearcher(OptunaSearcher):
    """Optuna's CMA-ES sampler, started from every unit keeping p (the uniform policy where each
    layer's MACs follow one unit's fraction) with step size `sigma0`; its population size is the
    `cmaes` package's default.

    CMA-ES learns only from the generations it samples, so a source's trials (augmented
    transfer, the assistant) would reach it as its `warm_start` first policies alone. With
    `warm_start_cma` it starts instead from the mean and covariance of the source's best
    trials rewritten for the target (Warm Starting CMA-ES, Nomura et al., AAAI 2021; Optuna's
    `source_trials`), the step size taken from their spread. With `x0_top` = K it starts, the
    step size unchanged, at the mean of the K best policies it knows when it first samples:
    those this search played before it (the warm-up's, the assistant's, the source's it
    replayed), else the source's trials rewritten for the target. So it searches where the
    best policies lie, not where the uniform policy does, and a hand-over from the assistant
    continues from the target's own best rather than from the source's.
    """

    name = "cmaes"
    settings_defaults = {**OptunaSearcher.settings_defaults, "sigma0": 0.1, "warm_start_cma": False, "x0_top": 0}
    sampled = True  # a searcher saved before `x0_top` centred on played trials had sampled: resumed, it goes on so

    def _make_sampler(self, x0: Sequence[float] | None = None) -> optuna.samplers.CmaEsSampler:
        centre = [self.target_ratio] * self.n_units if x0 is None else x0
        with warnings.catch_warnings():  # x0 and sigma0 are deprecated since Optuna 4.9, to go in 6.0
            warnings.simplefilter("ignore", FutureWarning)
            return optuna.samplers.CmaEsSampler(x0=dict(zip(self.distributions, map(float, centre))),
                                                sigma0=self.settings["sigma0"], seed=self.seed,
                                                n_startup_trials=0, warn_independent_sampling=False)

    def __init__(self, env: gym.Env, **kwargs: Any):
        super().__init__(env, **kwargs)
        self.sampled = False  # whether it has proposed a policy yet (`x0_top` centres the first)

    def _propose(self, trial: int) -> Sequence[float]:
        if self.settings["x0_top"] > 0 and not self.sampled:
            played = sorted(self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)),
                            key=lambda t: -t.value)[:self.settings["x0_top"]]
            if played:
                self.study.sampler = self._make_sampler(
                    np.mean([[t.params[name] for name in self.distributions] for t in played], axis=0))
        self.sampled = True
        return super()._propose(trial)

    def preload(self, episodes: Sequence[Episode]) -> None:
        super().preload(episodes)
        if self.settings["x0_top"] > 0 and episodes:
            best = sorted(episodes, key=lambda e: -e.accuracy)[:self.settings["x0_top"]]
            self.study.sampler = self._make_sampler(np.mean([e.fractions for e in best], axis=0))
        if self.settings["warm_start_cma"] and episodes:
            sources = [optuna.trial.create_trial(params=dict(zip(self.distributions, map(float, e.fractions))),
                                                 distributions=self.distributions, value=e.accuracy)
                       for e in episodes]
            with warnings.catch_warnings():  # source_trials is experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                self.study.sampler = optuna.samplers.CmaEsSampler(source_trials=sources, seed=self.seed,
                                                                  n_startup_trials=0, warn_independent_sampling=False)
