"""Black-box searchers on Optuna's samplers, over one kept fraction per unit in [0, 1].

Each trial asks the sampler for a whole policy (`study.ask` with every unit's
distribution fixed, so relative samplers such as CMA-ES see the whole space from the
first trial), plays it through the env's action wall, and tells the accuracy. Trials the
sampler did not propose (warm-up, assistant, a source's policies) are added to the study
as finished trials of the fractions really kept, so it learns from them all. The study
lives in memory and is saved as its finished trials and the sampler, generator included.
"""

from __future__ import annotations

import pickle
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import optuna

from prune_gym.agents.recorder import Trial
from prune_gym.agents.searcher import PolicySearcher

STUDY_FILE = "study.pkl"


class OptunaSearcher(PolicySearcher):
    """A `PolicySearcher` whose policies come from an Optuna sampler (`_make_sampler`)."""

    _not_pickled: ClassVar[tuple[str, ...]] = ("env", "study", "_asked")

    def __init__(self, env: gym.Env, **kwargs: Any):
        super().__init__(env, **kwargs)
        self.study = _study(self._make_sampler())
        self._asked: optuna.Trial | None = None

    def _make_sampler(self) -> optuna.samplers.BaseSampler:
        raise NotImplementedError

    @property
    def distributions(self) -> dict[str, optuna.distributions.FloatDistribution]:
        return {f"unit{k}": optuna.distributions.FloatDistribution(0.0, 1.0) for k in range(self.n_units)}

    def _propose(self, trial: int) -> Sequence[float]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            self._asked = self.study.ask(self.distributions)
        return [self._asked.params[name] for name in self.distributions]

    def learn(self, trial: Trial) -> None:
        if trial.origin == self.origin and self._asked is not None:
            self.study.tell(self._asked, trial.accuracy)
        elif trial.admitted:
            params = {name: float(f) for name, f in zip(self.distributions, trial.actions)}
            self.study.add_trial(optuna.trial.create_trial(params=params, distributions=self.distributions,
                                                           value=trial.accuracy))
        self._asked = None

    def save(self, directory: Path) -> None:
        super().save(directory)
        with open(Path(directory) / STUDY_FILE, "wb") as f:
            pickle.dump((self.study.sampler, self.study.get_trials(deepcopy=False)), f)

    @classmethod
    def load(cls, directory: Path, env: gym.Env) -> OptunaSearcher:
        searcher = super().load(directory, env)
        with open(Path(directory) / STUDY_FILE, "rb") as f:
            sampler, trials = pickle.load(f)
        searcher.study = _study(sampler)
        searcher.study.add_trials(trials)
        searcher._asked = None
        return searcher


def _study(sampler: optuna.samplers.BaseSampler) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(direction="maximize", sampler=sampler)
