"""`cmaes`: CMA-ES over the per-unit kept fractions, Optuna's sampler on the `cmaes` package."""

from __future__ import annotations

import warnings

import optuna

from prune_gym.agents.optuna_search import OptunaSearcher


class CMAESSearcher(OptunaSearcher):
    """Optuna's CMA-ES sampler, started from every unit keeping p (the uniform policy where each
    layer's MACs follow one unit's fraction) with step size `sigma0`; its population size is the
    `cmaes` package's default."""

    name = "cmaes"
    settings_defaults = {**OptunaSearcher.settings_defaults, "sigma0": 0.1}

    def _make_sampler(self) -> optuna.samplers.CmaEsSampler:
        x0 = {name: self.target_ratio for name in self.distributions}
        with warnings.catch_warnings():  # x0 and sigma0 are deprecated since Optuna 4.9, to go in 6.0
            warnings.simplefilter("ignore", FutureWarning)
            return optuna.samplers.CmaEsSampler(x0=x0, sigma0=self.settings["sigma0"], seed=self.seed,
                                                n_startup_trials=0, warn_independent_sampling=False)
