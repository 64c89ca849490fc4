"""One trial: played through the env by a searcher, and recorded in the history.

The recorder reads only what the env returns (observations, the kept fraction after the
action wall, the final info), never the searcher's internals, so every searcher is
recorded alike.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from prune_gym.agents.searcher import Searcher
from prune_gym.history import RunWriter

WEIGHTS_EVERY = 100  # trials between snapshots of the searcher's weights in the history


@dataclass
class Trial:
    """A finished trial: what the history records, and what a searcher learns from."""

    observations: np.ndarray  # (units, features): the observation before each unit
    actions: np.ndarray  # (units,) float64: the fractions kept, after the action wall
    reward: float
    accuracy: float
    macs_ratio: float
    origin: str  # who chose the actions: 'warmup', 'actor', 'searcher', 'assistant', 'history'
    wall_time: float  # seconds the trial took
    final_observation: np.ndarray  # (features,): after the last unit
    admitted: bool = True  # whether the searcher learned from it (the assistant may refuse it)

    def to_json(self) -> dict[str, Any]:
        return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Trial:
        arrays = {"observations": np.float32, "final_observation": np.float32, "actions": np.float64}
        return cls(**{k: (np.asarray(v, dtype=arrays[k]) if k in arrays else v) for k, v in data.items()})


def play_trial(env: gym.Env, searcher: Searcher, trial: int, seed: int | None = None) -> Trial:
    """Play trial `trial` (from 0): the searcher asks a fraction per unit, the env prunes and scores.

    `seed` seeds the env's reset (the loop gives it to the first trial a process plays).
    """
    start = time.perf_counter()
    origin = searcher.begin_trial(trial)
    observation, _ = env.reset(seed=seed)
    observations, kept = [], []
    terminated = False
    while not terminated:
        observations.append(observation)
        fraction = searcher.act(observation, len(kept))
        observation, reward, terminated, truncated, info = env.step(np.array([fraction], dtype=np.float32))
        kept.append(info["kept_fraction"])
    return Trial(np.stack(observations), np.asarray(kept, dtype=np.float64), float(reward), info["accuracy"],
                 info["macs_ratio"], origin, time.perf_counter() - start, observation)


def commit_trial(writer: RunWriter, trial: Trial, searcher: Searcher) -> None:
    """Append the trial to the history, with a snapshot of the searcher's weights every WEIGHTS_EVERY trials."""
    record = asdict(trial)
    del record["final_observation"]
    writer.append_trial(**record)
    weights = searcher.weights()
    if weights and writer.n_trials % WEIGHTS_EVERY == 0:
        writer.save_weights(f"trial-{writer.n_trials}", weights)
