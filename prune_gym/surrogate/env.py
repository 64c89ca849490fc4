"""ChannelPrune-v0's episodes with a surrogate's reward: one env, and N of them played in lockstep in numpy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from prune_gym.budgets import make_budget
from prune_gym.checkpoints import read_checkpoint
from prune_gym.errors import PruneGymError
from prune_gym.graph import PruningGraph, discover_units
from prune_gym.models import build_model
from prune_gym.pretrain import shipped_checkpoint
from prune_gym.rules import EpisodeRules, check_action
from prune_gym.surrogate import AccuracySurrogate, load_surrogate
from prune_gym.vector_env import LockstepVectorEnv


MIN_KEEP = 0.05  # ChannelPrune-v0's default, which the committed trials the surrogates learned from kept


@dataclass(frozen=True)
class SurrogateNetwork:
    """What a search records of the network it pruned; the digest marks the reward as a surrogate's, so that
    a history never takes a surrogate's run for a real one."""

    model_name: str
    dataset: str
    digest: str


def shipped_graph(model: str, dataset: str) -> tuple[PruningGraph, dict[str, Any]]:
    """The units of the network that ships for `model` on `dataset` (traced from its structure: an untrained
    copy, no data read), and its checkpoint's metadata."""
    path = shipped_checkpoint(model, dataset)
    if path is None:
        raise PruneGymError(f"no {model} checkpoint for {dataset} ships with this install of prune-gym")
    _, meta = read_checkpoint(path)
    shape = (meta["input"]["in_channels"], meta["input"]["image_size"], meta["input"]["image_size"])
    return discover_units(build_model(model, **meta["input"]).eval(), shape), meta


def surrogate_rules(model: str, dataset: str, target_ratio: float
                    ) -> tuple[EpisodeRules, AccuracySurrogate, SurrogateNetwork, float]:
    """The real task's units and MACs budget (the env's default minimum), its surrogate, the network's record and its unpruned reward-split
    accuracy."""
    graph, meta = shipped_graph(model, dataset)
    surrogate = load_surrogate(model, dataset)
    if surrogate.meta.get("checkpoint_digest") != meta["digest"]:
        raise PruneGymError(f"the surrogate of {model} on {dataset} was fitted on other weights than those that "
                            f"ship; refit it with benchmarks/fit_surrogates.py")
    if len(graph.units) != surrogate.units:
        raise PruneGymError(f"the surrogate of {model} takes {surrogate.units} units; the network has "
                            f"{len(graph.units)}")
    rules = EpisodeRules(graph, make_budget("macs", graph, target_ratio, MIN_KEEP))
    return rules, surrogate, SurrogateNetwork(model, dataset, f"surrogate-{meta['digest']}"), \
        float(meta["reward_accuracy"])


class SurrogatePruneEnv(gym.Env):
    """
    ## Description

    A standard task's episodes (`prune_gym.tasks`) with the reward a fitted surrogate predicts
    (`prune_gym.surrogate`) instead of the pruned network's measured accuracy: the same units,
    action wall and observations as ChannelPrune-v0, so the same actions keep the same channels,
    but nothing is pruned and an episode costs microseconds. For agent research; confirm on the
    real task.

    ## Action Space

    `Box(0.0, 1.0, (1,), float32)`: the fraction of the current unit's channels to keep, taken as
    ChannelPrune-v0 takes it (clipped, rounded to whole channels, between the unit's minimum and
    the budget's wall).

    ## Observation Space

    `Box(0.0, 1.0, (13,), float32)`: ChannelPrune-v0's observation of the unit about to be decided.

    ## Rewards

    0 at every step but the last, which pays the surrogate's predicted reward-split accuracy of the
    policy played, in [0, 1].

    ## Starting State

    The unpruned network's first unit; nothing is drawn.

    ## Episode End

    Terminated by the step that decides the last unit; never truncated.

    ## Arguments

    * `model`, `dataset`, `target_ratio`: the task's network (one that ships with a surrogate) and p.

    ## Info

    As ChannelPrune-v0's, but the last step's holds no `params_ratio`, and `surrogate: True`.
    """

    metadata = {"render_modes": []}

    def __init__(self, model: str, dataset: str, target_ratio: float):
        self.rules, self.surrogate, self.workload, self.original_accuracy = surrogate_rules(model, dataset,
                                                                                            target_ratio)
        self.units, self.budget = self.rules.units, self.rules.budget
        self.observation_features = self.rules.features
        self.device, self.reward_kind = torch.device("cpu"), "accuracy"
        self.observation_space = gym.spaces.Box(0.0, 1.0, (len(self.observation_features),), np.float32)
        self.action_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
        self._done = True

    @property
    def target_ratio(self) -> float:
        return self.budget.target_ratio

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._kept: list[int] = []
        self._previous, self._done = 1.0, False
        return self.rules.observation(0, self._kept, self._previous), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self._done:
            raise gym.error.ResetNeeded("the episode is over (or never started): call reset() before step()")
        k = len(self._kept)
        n_keep, wall = self.rules.kept_channels(k, check_action(action), self._kept)
        self._kept.append(n_keep)
        unit = self.units[k]
        self._previous = n_keep / unit.channels
        info: dict[str, Any] = {"unit": unit.producer, "kept_channels": n_keep, "kept_fraction": self._previous,
                                "wall": wall / unit.channels}
        reward = 0.0
        if len(self._kept) == len(self.units):
            self._done = True
            final = self.rules.final_info(self._kept)
            reward = float(self.surrogate.predict(np.array([final["policy"]]))[0])  # as a batch of one
            info.update(accuracy=reward, original_accuracy=self.original_accuracy, surrogate=True, **final)
        return self.rules.observation(len(self._kept), self._kept, self._previous), reward, self._done, False, info

    def simulate(self, fractions: list[float]) -> tuple[np.ndarray, np.ndarray]:
        """As `ChannelPruneEnv.simulate`."""
        return self.rules.simulate(fractions)

    def asked_ratio(self, fractions: list[float]) -> float:
        """As `ChannelPruneEnv.asked_ratio`."""
        return self.rules.asked_ratio(fractions)

    def unit_table(self) -> tuple[list[str], list[str], np.ndarray]:
        """As `ChannelPruneEnv.unit_table`."""
        return self.rules.unit_table()


class SurrogatePruneVectorEnv(LockstepVectorEnv):
    """`num_envs` episodes of `SurrogatePruneEnv` played in lockstep with numpy, one row each: the same actions give
    the same observations and kept channels as `num_envs` separate envs, and the same rewards to 1e-12 (one
    policy or many through the same perceptron)."""

    def __init__(self, model: str, dataset: str, target_ratio: float, num_envs: int = 1):
        rules, self.surrogate, self.workload, self.original_accuracy = surrogate_rules(model, dataset, target_ratio)
        super().__init__(rules, num_envs)

    def _score(self, kept: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        accuracies = self.surrogate.predict(kept / self.rules.channels)
        return accuracies, accuracies.copy()
