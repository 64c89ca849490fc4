"""`tpe`: Optuna's tree-structured Parzen estimator over the per-unit kept fractions."""

from __future__ import annotations

import optuna

from prune_gym.agents.optuna_search import OptunaSearcher


class TPESearcher(OptunaSearcher):
    """Optuna's TPE sampler; its first trials are the shared warm-up around p (10 by default)
    instead of its own uniform start-up, then it models every finished trial."""

    name = "tpe"
    default_warmup = 10
    settings_defaults = {**OptunaSearcher.settings_defaults, "n_ei_candidates": 24, "multivariate": False}

    def _make_sampler(self) -> optuna.samplers.TPESampler:
        return optuna.samplers.TPESampler(n_startup_trials=0, n_ei_candidates=self.settings["n_ei_candidates"],
                                          multivariate=self.settings["multivariate"], seed=self.seed)
