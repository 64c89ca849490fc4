"""Plain-data records the store writes and returns; no HDF5 here, only numpy."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from prune_gym.history.errors import HistoryError


@dataclass(frozen=True, eq=False)
class Scenario:
    """What was pruned, and how it was scored: the part of a run that is independent of the agent."""

    model: str
    dataset: str
    checkpoint_digest: str
    target_ratio: float
    reward: str
    unit_names: list[str]
    feature_names: list[str]
    unit_features: np.ndarray  # (units, features) float32: the unit table's static features

    def __post_init__(self) -> None:
        features = np.asarray(self.unit_features, dtype=np.float32)
        expected = (len(self.unit_names), len(self.feature_names))
        if features.shape != expected:
            raise ValueError(f"unit_features has shape {features.shape}, expected (units, features) = {expected}")
        if not 0.0 < self.target_ratio <= 1.0:
            raise ValueError(f"target_ratio must be in (0, 1], got {self.target_ratio}")
        object.__setattr__(self, "unit_features", features)
        object.__setattr__(self, "unit_names", list(self.unit_names))
        object.__setattr__(self, "feature_names", list(self.feature_names))

    @property
    def n_units(self) -> int:
        return len(self.unit_names)

    @property
    def n_features(self) -> int:
        return len(self.feature_names)


LEGACY_AGENT = "amc-ddpg"  # the searcher of runs recorded before the searcher was a setting


@dataclass(frozen=True, eq=False)
class RunInfo:
    """A run's metadata and trial count, cheap enough to list for every run in a file."""

    run_id: str
    scenario: Scenario
    method: str
    settings: dict
    seed: int
    sources: list[str]
    versions: dict[str, str]
    start_time: str  # ISO 8601, UTC
    end_time: str | None  # None until finished
    resume_times: list[str]
    status: str  # running | finished | interrupted
    n_trials: int
    best_accuracy: float | None  # None while the run has no trials
    weight_tags: list[str] = field(default_factory=list)
    notes: dict = field(default_factory=dict)  # added after the run, by key (`HistoryStore.annotate`)

    @property
    def agent(self) -> str:
        """The searcher that made the run (`prune-gym search --agent`)."""
        return self.settings.get("agent", LEGACY_AGENT)


Weights = dict[str, dict[str, np.ndarray]]  # a searcher's saved state dicts by part ("actor", ...), as arrays


class Transitions(NamedTuple):
    """Replay transitions, one per unit step; actions have shape (n, 1) like the env's."""

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_obs: np.ndarray
    dones: np.ndarray


@dataclass(frozen=True, eq=False)
class Run:
    """A run's metadata and every trial, as arrays indexed by trial number (from 0)."""

    info: RunInfo
    observations: np.ndarray  # (trials, units, features) float32
    actions: np.ndarray  # (trials, units) float32
    rewards: np.ndarray  # (trials,) float64
    accuracies: np.ndarray
    macs_ratios: np.ndarray
    wall_times: np.ndarray  # seconds each trial took
    origins: np.ndarray  # (trials,) str
    admitted: np.ndarray  # (trials,) bool: whether the trial went into the replay buffer
    final_policy: np.ndarray | None = None  # the best policy recorded when the run finished

    @property
    def n_trials(self) -> int:
        return len(self.accuracies)

    def best_trial(self) -> int:
        """The trial with the highest accuracy (the first one on ties)."""
        if self.n_trials == 0:
            raise HistoryError(f"run {self.info.run_id!r} has no trials yet")
        return int(np.argmax(self.accuracies))

    def best_policy(self) -> np.ndarray:
        """The policy recorded at finish, else the actions of the best-accuracy trial so far."""
        if self.final_policy is not None:
            return self.final_policy
        return self.actions[self.best_trial()]

    def transitions(self, *, admitted_only: bool = False) -> Transitions:
        """Each trial as an episode of unit steps: reward 0 until the last step, which carries
        the trial's reward and is done (its next_obs is its own obs). Agents rewrite rewards."""
        keep = self.admitted if admitted_only else slice(None)
        obs = self.observations[keep]
        trials, units, features = obs.shape
        next_obs = np.concatenate([obs[:, 1:], obs[:, -1:]], axis=1)
        rewards = np.zeros((trials, units), dtype=np.float32)
        rewards[:, -1] = self.rewards[keep]
        dones = np.zeros((trials, units), dtype=bool)
        dones[:, -1] = True
        return Transitions(
            obs=obs.reshape(-1, features),
            actions=self.actions[keep].reshape(-1, 1),
            rewards=rewards.reshape(-1),
            next_obs=next_obs.reshape(-1, features),
            dones=dones.reshape(-1),
        )
