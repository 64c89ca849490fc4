"""The searcher interface: what the trial loop asks of any agent that searches pruning policies.

A searcher proposes the kept fraction of each unit, trial after trial, and learns from
each finished trial. The trial loop (`prune_gym.agents.loop`) owns everything else: the
env, the history, checkpoints and resume. Per trial it calls

    origin = searcher.begin_trial(t)          # 'warmup', the searcher's own origin, 'history', ...
    for each unit k:  fraction = searcher.act(observation, k)   # played through the env's action wall
    trial.admitted = searcher.admits(trial)   # the finished `Trial`
    searcher.learn(trial)

then saves the searcher (`save`, `load`) and records the trial. The first `warmup` trials
are played here, for every searcher alike: each fraction drawn from a normal around the
target ratio p (sigma 0.1) truncated to [0, 1], the draw of the AMC-style baseline's
warm-up. A searcher sees them in `learn` like any other trial, by their origin.

To write one, subclass `Searcher` (act per unit step) or `PolicySearcher` (a whole policy
per trial), set `name` and `settings_defaults` (each setting it takes, with its default), and implement the
hooks. Searchers that can take history say so: `takes_weights` (the paper's vanilla
transfer: `weights`, `load_weights`) and `takes_trials` (augmented: `preload`).
"""

from __future__ import annotations

import pickle
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import gymnasium as gym
import numpy as np

from prune_gym.agents.settings import SettingsSchema
from prune_gym.budgets import Budget
from prune_gym.errors import PruneGymError
from prune_gym.policies import uniform_policy

if TYPE_CHECKING:  # the loop imports this module; only type hints go the other way
    from prune_gym.agents.augmentation import Episode
    from prune_gym.agents.recorder import Trial

WARMUP_SIGMA = 0.1  # the warm-up's spread around p (AMC's own draw, uniform over [0, 1], is sigma None)
WARMUP_CENTERS = ("p", "uniform")  # what random kept fractions are drawn around
STATE_FILE = "searcher.pkl"


def warmup_center(budget: Budget, center: str) -> float:
    """The kept fraction random draws center on: p itself, or ("uniform") the fraction that, kept in every
    unit, fills the budget. The two differ where a layer's MACs grow with two units' fractions (a depthwise
    net's pointwise convs, the residual streams as units): there fractions around p spend about p^2."""
    if center not in WARMUP_CENTERS:
        raise PruneGymError(f"a warm-up center is one of {', '.join(WARMUP_CENTERS)}, got {center!r}")
    return budget.target_ratio if center == "p" else max(uniform_policy(budget))


def truncated_normal(rng: np.random.Generator, mean: np.ndarray, sigma: float, low: np.ndarray,
                     high: np.ndarray) -> np.ndarray:
    """Normal samples around `mean`, redrawn until they fall within [low, high] (AMC's exploration)."""
    mean = np.asarray(mean, dtype=np.float64)
    if sigma <= 0:
        return np.clip(mean, low, high)
    sample = rng.normal(mean, sigma)
    for _ in range(1000):
        outside = (sample < low) | (sample > high)
        if not outside.any():
            return sample
        sample = np.where(outside, rng.normal(mean, sigma), sample)
    return np.clip(sample, low, high)


def warmup_action(rng: np.random.Generator, ratio: float, sigma: float | None, shape: tuple[int, ...] = (1, 1)
                  ) -> np.ndarray:
    """Random kept fractions of the warm-up: truncated normal around `ratio`, or uniform on [0, 1] if sigma is None."""
    if sigma is None:
        return rng.uniform(0.0, 1.0, size=shape)
    return truncated_normal(rng, np.full(shape, ratio), sigma, np.zeros(shape[-1:]), np.ones(shape[-1:]))


class Searcher:
    """Proposes a kept fraction per unit step and learns from finished trials.

    :param env: the ChannelPrune-v0 env the loop plays (wrapped or not); read its spaces,
        `units`, `budget` and `target_ratio` from `env.unwrapped`
    :param seed: seeds the searcher's own generator, `self.rng`
    :param warmup: trials of random fractions around p before the searcher acts itself
        (None: the class's `default_warmup`)
    :param settings: the searcher's own settings, each named in `settings_defaults`
    """

    name: ClassVar[str] = ""  # what `prune-gym search --agent` calls it
    origin: ClassVar[str] = "searcher"  # recorded for the trials it plays itself
    default_warmup: ClassVar[int] = 0
    settings_defaults: ClassVar[Mapping[str, Any]] = {}  # every setting it takes, with its default
    nullable: ClassVar[frozenset[str]] = frozenset()  # settings that also take None
    choices: ClassVar[dict[str, tuple[str, ...]]] = {}  # settings that take one of a few names
    takes_weights: ClassVar[bool] = False  # can start from a stored run's weights (vanilla transfer)
    takes_trials: ClassVar[bool] = False  # can start from a source's trials rewritten for the target (augmented)
    warmup_sigma: float | None = WARMUP_SIGMA  # the warm-up draw's spread (None: uniform over [0, 1])
    warmup_mean: float | None = None  # the warm-up draw's center (None: p), see `warmup_center`
    _not_pickled: ClassVar[tuple[str, ...]] = ("env",)  # attributes `save` leaves to `_attach` or subclasses

    def __init__(self, env: gym.Env, *, seed: int = 0, warmup: int | None = None, **settings: Any):
        self.settings = {**self.settings_defaults, **check_settings(type(self), settings)}
        self.seed = seed
        self.warmup = self.default_warmup if warmup is None else warmup
        if self.warmup < 0:
            raise PruneGymError(f"warmup must be 0 or more trials, got {self.warmup}")
        self.rng = np.random.default_rng(seed)
        self.trial = -1  # the trial being played
        self._warming_up = False
        self._attach(env)

    def _attach(self, env: gym.Env) -> None:
        """Hold the env (at construction and after `load`)."""
        self.env = env

    @property
    def target_ratio(self) -> float:
        return self.env.unwrapped.target_ratio

    @property
    def n_units(self) -> int:
        return len(self.env.unwrapped.units)

    # -- what the trial loop calls -------------------------------------------------------

    def begin_trial(self, trial: int) -> str:
        """Get ready to play trial `trial` (from 0); returns the origin to record for its actions."""
        self.trial = trial
        self._warming_up = trial < self.warmup
        return "warmup" if self._warming_up else self._begin(trial)

    def act(self, observation: np.ndarray, step: int) -> float:
        """The kept fraction asked for unit `step`, given the env's observation before it."""
        if self._warming_up:
            center = self.target_ratio if self.warmup_mean is None else self.warmup_mean
            return float(warmup_action(self.rng, center, self.warmup_sigma)[0, 0])
        return self._act(observation, step)

    def admits(self, trial: Trial) -> bool:
        """Whether the searcher learns from this finished trial (recorded as `admitted`)."""
        return True

    def learn(self, trial: Trial) -> None:
        """Learn from a finished trial, whoever played it (see `trial.origin`); `trial.admitted` is set."""

    # -- the hooks a searcher implements --------------------------------------------------

    def _begin(self, trial: int) -> str:
        """Get ready to play a trial of its own; returns its origin."""
        return self.origin

    def _act(self, observation: np.ndarray, step: int) -> float:
        raise NotImplementedError(f"{type(self).__name__} must implement _act (or be a PolicySearcher)")

    # -- history --------------------------------------------------------------------------

    def weights(self) -> dict[str, Mapping[str, Any]]:
        """Named state dicts to snapshot in the history and transfer later (empty: nothing to transfer)."""
        return {}

    def load_weights(self, weights: Mapping[str, Mapping[str, np.ndarray]]) -> None:
        """Start from a stored run's `weights()` (vanilla transfer); only when `takes_weights`."""
        raise PruneGymError(f"the {self.name} searcher has no weights to transfer into")

    def preload(self, episodes: Sequence[Episode]) -> None:
        """Start from a source's trials rewritten for this scenario (augmented); only when `takes_trials`."""
        raise PruneGymError(f"the {self.name} searcher cannot start from a source's trials")

    def set_logger(self, logger: Any) -> None:
        """An SB3 `Logger` the search writes to (TensorBoard); searchers with training statistics record there."""

    # -- state ------------------------------------------------------------------------------

    def save(self, directory: Path) -> None:
        """Write the searcher's whole state into `directory`, so that `load` continues it exactly."""
        state = {k: v for k, v in self.__dict__.items() if k not in self._not_pickled}
        with open(Path(directory) / STATE_FILE, "wb") as f:
            pickle.dump(state, f)

    @classmethod
    def load(cls, directory: Path, env: gym.Env) -> Searcher:
        """The searcher `save` wrote into `directory`, playing `env`."""
        searcher = cls.__new__(cls)
        with open(Path(directory) / STATE_FILE, "rb") as f:
            searcher.__dict__.update(pickle.load(f))
        searcher.settings = {**cls.settings_defaults, **searcher.settings}  # settings added since it was saved
        searcher._attach(env)
        return searcher


class PolicySearcher(Searcher):
    """A searcher that proposes a whole policy per trial: black-box searchers.

    `_propose` returns one kept fraction per unit; the env's action wall keeps the trial
    within budget whatever it asks. Source policies given to `preload` (the best first)
    are played before its own, with origin 'history'; `learn` sees them like any trial.
    """

    takes_trials = True
    settings_defaults: ClassVar[Mapping[str, Any]] = {"warm_start": 5}  # source policies played first

    def __init__(self, env: gym.Env, **kwargs: Any):
        super().__init__(env, **kwargs)
        self.queue: deque[np.ndarray] = deque()
        self.policy: np.ndarray = np.empty(0)

    def _begin(self, trial: int) -> str:
        if self.queue:
            self.policy = self.queue.popleft()
            return "history"
        self.policy = np.asarray(self._propose(trial), dtype=np.float64)
        if self.policy.shape != (self.n_units,):
            raise PruneGymError(f"{type(self).__name__} proposed {self.policy.shape} fractions for "
                                f"{self.n_units} units")
        return self.origin

    def _act(self, observation: np.ndarray, step: int) -> float:
        return float(self.policy[step])

    def _propose(self, trial: int) -> Sequence[float]:
        raise NotImplementedError(f"{type(self).__name__} must implement _propose")

    def preload(self, episodes: Sequence[Episode]) -> None:
        best = sorted(episodes, key=lambda e: -e.accuracy)[:self.settings["warm_start"]]
        self.queue.extend(np.asarray(e.fractions, dtype=np.float64) for e in best)


def settings_schema(cls: type[Searcher]) -> SettingsSchema:
    """The schema of `cls`'s settings: `settings_defaults`, `choices` and `nullable`."""
    return SettingsSchema(cls.name, f"the {cls.name} searcher", cls.settings_defaults, cls.choices, cls.nullable)


def check_settings(cls: type[Searcher], settings: Mapping[str, Any]) -> dict[str, Any]:
    """`settings` if `cls` takes each of them with a value of its default's type, else a PruneGymError."""
    return settings_schema(cls).check(settings)


def parse_setting(cls: type[Searcher], text: str) -> tuple[str, Any]:
    """NAME=VALUE from the command line, the value read as the type of the setting's default."""
    return settings_schema(cls).parse(text)
