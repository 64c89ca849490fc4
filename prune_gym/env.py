"""ChannelPrune-v0: prune a trained CNN's channels unit by unit to meet a budget (MACs by default).

Each step decides one prunable unit (see `prune_gym.graph`): the action is the fraction
of its channels to keep, clipped by the budget's action wall. The channels are chosen
and the consumer refitted by reconstruction (see `prune_gym.pruner`), on the env's
device. The episode ends after the last unit with `terminated=True`, and only then is the
reward paid: the pruned network's top-1 accuracy on the reward split (held out from
both training and calibration), or AMC's -error * log(MACs). `ChannelPruneEnv`'s docstring
gives its spaces, rewards, arguments, info keys and what `seed` does.
"""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path
from typing import Any, Sequence

import gymnasium as gym
import numpy as np
import torch

from prune_gym.budgets import DEFAULT_BUDGET, UnreachableBudget, make_budget
from prune_gym.devices import resolve_device
from prune_gym.errors import PruneGymError
from prune_gym.evaluation import accuracy
from prune_gym.graph import GraphError, discover_units
from prune_gym.macs import count_params
from prune_gym.pruner import MODES, EpisodePruner, WorkingCopy, prepare_reconstruction
from prune_gym.recalibration import recalibrate_batchnorm
from prune_gym.rules import EpisodeRules, check_action, observation_features
from prune_gym.workload import Workload

OBSERVATION_FEATURES = observation_features()
REWARDS = ("accuracy", "acc_log_flops")


class ChannelPruneEnv(gym.Env):
    """
    ## Description

    Prunes a trained CNN's channels one unit at a time until its cost meets a budget, the way AMC
    (He et al., 2018) frames channel pruning. A unit is a set of channels that must go together: a
    conv's or a linear layer's output channels with every layer that reads or follows them
    (`prune_gym.graph`). Each step keeps a fraction of one unit's channels, the ones a LASSO on the
    original network ranked highest, and refits the layers that read them by least squares on
    calibration images (`prune_gym.pruner`; `reconstruction="magnitude"` keeps the largest filters
    instead, with no refit). After the last unit the pruned network is scored on the reward split,
    images held out from both training and calibration.

    ## Action Space

    `Box(0.0, 1.0, (1,), float32)`: the fraction of the current unit's channels to keep. A number or
    an array of shape (1,) is taken, clipped to [0, 1], rounded to whole channels (whole groups for a
    grouped conv, multiples of `round_to`), raised to the unit's minimum (`min_keep` of its channels,
    at least one) and lowered to the budget's wall: the most the unit may keep while the later units,
    at their minimum, still meet the budget. So every episode ends within budget. A NaN, an infinity or another shape raises
    `ValueError`.

    ## Observation Space

    `Box(0.0, 1.0, (13,), float32)`: the unit about to be decided. Columns 1-8 are min-max normalised
    over the network's units (a column equal for every unit is 0). The budget's three columns are
    named after its kind, `macs` by default (`observation_features(budget)` gives the names).

    | index | name | range | what it holds |
    |-------|------|-------|---------------|
    | 0 | unit_index | [0, 1] | the unit's position, k / (units - 1) |
    | 1 | layer_type | [0, 1] | 0 for a conv producer, 1 for a linear one |
    | 2 | in_channels | [0, 1] | the producer's input channels (a linear's input features) |
    | 3 | out_channels | [0, 1] | the unit's channels |
    | 4 | kernel | [0, 1] | the producer's kernel size (1 for a linear) |
    | 5 | stride | [0, 1] | the producer's stride (1 for a linear) |
    | 6 | feature_map | [0, 1] | the producer's input height x width (1 for a linear) |
    | 7 | depthwise_members | [0, 1] | the depthwise (or grouped) convs cut with the unit |
    | 8 | unit_macs | [0, 1] | the unpruned cost of the layers the unit controls |
    | 9 | macs_reduced | [0, 1] | the share of the total cost the units decided so far removed |
    | 10 | macs_rest | [0, 1] | the share of the total cost in layers that only later units decide |
    | 11 | previous_action | [0, 1] | the previous unit's kept fraction, after the wall (1 at the first) |
    | 12 | target_ratio | (0, 1] | p, the fraction of the total cost kept (so one agent serves several p) |

    After the last unit the observation repeats the last unit's columns 0-8, with macs_rest 0.

    ## Rewards

    0 at every step but the last, which pays the pruned network's top-1 accuracy on the reward split,
    a fraction in [0, 1] (`reward="accuracy"`), or AMC's `-(1 - accuracy) * log(MACs)`
    (`reward="acc_log_flops"`). With `recalibrate_bn=True` the BatchNorm statistics are first
    measured again on the calibration images (`prune_gym.recalibration`), and the network exported
    from the episode keeps them.

    ## Starting State

    `reset()` restores the unpruned network and returns the first unit's observation (nothing
    reduced, previous_action 1) with an empty info. Nothing is drawn: every episode starts alike.

    ## Episode End

    The episode is terminated by the step that decides the last unit (`terminated=True`; the reward
    is paid then). It is never truncated: `truncated` is always False, and `ChannelPrune-v0` is
    registered without `max_episode_steps`, so no TimeLimit wrapper cuts an episode short. A step
    after the end raises `gymnasium.error.ResetNeeded`.

    ## Arguments

    ```python
    gym.make("ChannelPrune-v0", model="resnet20", dataset="fashion-mnist", target_ratio=0.5)
    ```

    * `model`, `dataset`: a zoo model (`prune_gym.models.model_names()`) and a data set
      (`prune_gym.datasets.dataset_names()`); an unknown name is refused with the choices. The weights
      are the checkpoint `prune-gym pretrain` cached for the pair, or `checkpoint`.
    * `target_ratio`: p, the fraction of the unpruned cost the pruned network may keep; one under
      what every unit at its minimum costs is refused.
    * `device`: "auto" (CUDA when there is one), "cpu", "cuda" or "cuda:N": where the network is
      pruned, refit and scored.
    * `checkpoint`: a checkpoint file to prune instead of the cached one.
    * `data_root`: where the data set lies (default: the prune-gym home, `$PRUNE_GYM_HOME`, where
      Fashion-MNIST is downloaded).
    * `workload`: your own network and images (`Workload.from_module`), in place of `model`,
      `dataset`, `checkpoint`, `data_root` and `reward_images`.
    * `reconstruction`: "pruned" (refit from the pruned network's inputs, the default), "original"
      (from the original network's inputs) or "magnitude" (keep the largest filters, no refit).
    * `reward`: "accuracy" or "acc_log_flops" (above).
    * `recalibrate_bn`: score (and export) the pruned network with its BatchNorm statistics measured
      again on the calibration images (above); about a quarter of an episode more. It suits
      `reconstruction="magnitude"`; after the refit, fitted under the original statistics, it lowers
      the accuracy.
    * `min_keep`: the least fraction of each unit's channels an episode keeps (0.05).
    * `round_to`: keep each unit's channel count a multiple of this (1: any count); a unit whose channels
      are not a multiple stays whole. Widths in multiples of 8 or 16 run faster on most hardware.
    * `calibration_images`, `positions_per_image`: the images (500) and the positions in each (10)
      whose activations the refit fits.
    * `reward_images`: how many reward-split images score an episode (default: all, 2,000).
    * `batch_size`: the batch of the calibration and scoring passes (default 128 on a CPU, 1024 on
      a GPU).
    * `calibration_seed`: which positions the refit samples (see Seeding).
    * `budget`: a budget kind of `prune_gym.budgets.BUDGETS`: "macs" (the default), "latency" (a
      latency table measured on `device`), or one of your own (`register_budget`).
    * `leaf_modules`: qualified names of modules the trace keeps as single calls, their channels
      whole (for code torch.fx cannot trace).
    * `residual_streams`: make the channels that residual additions join a unit, instead of keeping
      them whole.

    ## Info

    Every step's info holds `unit` (the producer layer's name), `kept_channels`, `kept_fraction`
    (after the wall) and `wall` (the most the unit could keep, as a fraction of its channels). The
    last step adds `accuracy` (reward split), `original_accuracy` (the unpruned network's), `macs`,
    `macs_ratio`, `params_ratio`, `policy` (the kept fraction per unit), `kept_channels_per_unit`
    and, under another budget, its ratio (`latency_ratio`): MACs are reported whatever the budget.
    `reset()`'s info is empty; the seconds each stage took are in `timings`, not in info, which
    stays deterministic.

    ## Seeding

    `reset(seed=...)` seeds Gymnasium's `np_random`, as every env does, but the env draws nothing
    from it: an episode is a function of its actions alone, the same after any reset. The one random
    choice, which positions of the calibration images the refit samples, is made once when the env
    is built, by `calibration_seed`. A searcher seeds its own exploration.
    """

    metadata = {"render_modes": []}

    def __init__(self, model: str = "resnet20", dataset: str = "fashion-mnist", target_ratio: float = 0.5,
                 device: str = "auto", *, checkpoint: str | Path | None = None, data_root: str | Path | None = None,
                 workload: Workload | None = None, reconstruction: str = "pruned", reward: str = "accuracy",
                 min_keep: float = 0.05, calibration_images: int = 500, positions_per_image: int = 10,
                 reward_images: int | None = None, batch_size: int | None = None, calibration_seed: int = 0,
                 budget: str = DEFAULT_BUDGET, leaf_modules: Sequence[str] = (), residual_streams: bool = False,
                 round_to: int = 1, recalibrate_bn: bool = False):
        if reconstruction not in MODES:
            raise PruneGymError(f"unknown reconstruction {reconstruction!r}; choose one of: {', '.join(MODES)}")
        if reward not in REWARDS:
            raise PruneGymError(f"unknown reward {reward!r}; choose one of: {', '.join(REWARDS)}")
        if isinstance(round_to, bool) or not isinstance(round_to, (int, np.integer)) or round_to < 1:
            raise PruneGymError(f"round_to must be a whole number of channels, 1 or more, got {round_to!r}")
        self.round_to = round_to
        self.device = resolve_device(device)
        if workload is None:
            workload = Workload.from_zoo(model, dataset, checkpoint, data_root, calibration_images, reward_images)
        self.workload = workload
        self.reconstruction, self.reward_kind, self.recalibrate_bn = reconstruction, reward, recalibrate_bn
        # Cache-sized batches are several times faster on a CPU; a GPU wants large ones.
        self.batch_size = batch_size or (128 if self.device.type == "cpu" else 1024)
        network = copy.deepcopy(workload.model).to(self.device).eval()  # the user's model stays as it was
        self.graph = discover_units(network, workload.input_shape, leaf_modules, residual_streams)
        if not self.graph.units:
            raise GraphError(f"{workload.model_name} has no prunable unit (frozen: {self.graph.frozen})")
        self.units = self.graph.units
        try:
            self.budget = make_budget(budget, self.graph, target_ratio, min_keep, self.device, round_to)
        except UnreachableBudget as exc:
            raise UnreachableBudget(f"{exc}. {self._frozen_costs(budget, min_keep)}") from None
        self.rules = EpisodeRules(self.graph, self.budget)
        self.observation_features = self.rules.features

        self._calibration = list(workload.calibration[:calibration_images].to(self.device).split(self.batch_size))
        self._reward_x, self._reward_y = (t.to(self.device) for t in workload.reward)
        generator = torch.Generator().manual_seed(calibration_seed)
        self._reconstruction = prepare_reconstruction(self.graph, self._calibration, positions_per_image,
                                                     reconstruction, generator)
        self.original_accuracy = self._accuracy(self.graph.graph_module)
        self.original_params = count_params(network)

        self.observation_space = gym.spaces.Box(0.0, 1.0, (len(self.observation_features),), np.float32)
        self.action_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
        self._working_copy = WorkingCopy(self.graph)
        self._pruner: EpisodePruner | None = None
        self._done = True
        # Seconds spent in the last episode, by stage; kept out of `info`, which must be deterministic.
        self.timings: dict[str, float] = {}

    # ------------------------------------------------------------------ gym API

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        start = time.perf_counter()
        self._pruner = self.new_pruner(self._working_copy)
        self.timings = {"reset": time.perf_counter() - start}
        self._step, self._kept, self._indices, self._previous = 0, [], [], 1.0
        self._done = False
        return self._observation(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self._pruner is None or self._done:
            raise gym.error.ResetNeeded("the episode is over (or never started): call reset() before step()")
        fraction = check_action(action)
        k = self._step
        unit = self.units[k]
        n_keep, wall = self.rules.kept_channels(k, fraction, self._kept)
        self._indices.append(self._pruner.prune(unit, n_keep))
        self._kept.append(n_keep)
        self._previous = n_keep / unit.channels
        self._step += 1
        info: dict[str, Any] = {"unit": unit.producer, "kept_channels": n_keep, "kept_fraction": self._previous,
                                "wall": wall / unit.channels}
        reward = 0.0
        if self._step == len(self.units):
            self._pruner.finish()
            self._done = True
            info.update(self._final_info())
            reward = self._reward(info["accuracy"], info["macs"])
        return self._observation(), reward, self._done, False, info

    def simulate(self, fractions: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        """What an episode playing `fractions` would observe and keep, without pruning anything.

        Returns the observations before each unit and after the last, (units + 1, features),
        and the fractions kept after the action wall, (units,). Turns a policy recorded in
        another scenario into transitions of this one, at no cost.
        """
        return self.rules.simulate(fractions)

    def asked_ratio(self, fractions: Sequence[float]) -> float:
        """The budget's ratio a policy asks for, each unit's fraction in whole channels (at least its minimum)
        as an episode takes it, before the action wall cuts what would break the budget."""
        return self.rules.asked_ratio(fractions)

    # ------------------------------------------------------------------ results

    @property
    def target_ratio(self) -> float:
        """p, the fraction of the MACs an episode keeps (held by the budget)."""
        return self.budget.target_ratio

    @property
    def pruned_network(self) -> torch.nn.Module:
        """The network of the current episode, with the channels removed so far (valid until the next reset);
        mid-episode, the consumers of the last units wait for their refit (see `EpisodePruner`)."""
        if self._pruner is None:
            raise gym.error.ResetNeeded("no episode has started")
        return self._pruner.network

    @property
    def kept_indices(self) -> list[torch.Tensor]:
        """Indices of the channels kept in each unit decided so far."""
        return list(self._indices)

    def _final_info(self) -> dict[str, Any]:
        network = self._pruner.network
        start = time.perf_counter()
        acc = self._pruned_accuracy(network)
        self.timings.update(self._pruner.seconds, evaluation=time.perf_counter() - start)
        budget_info = self.rules.final_info(self._kept)
        return {"accuracy": acc, "original_accuracy": self.original_accuracy, "macs": budget_info.pop("macs"),
                "macs_ratio": budget_info.pop("macs_ratio"),
                "params_ratio": count_params(network) / self.original_params, **budget_info}

    def new_pruner(self, working_copy: WorkingCopy) -> EpisodePruner:
        """A new episode's pruner on `working_copy`'s network, put back to the unpruned one (a vector env keeps one
        working copy per episode, and shares the rest)."""
        return EpisodePruner(working_copy.restore(), self._reconstruction, self._calibration, self.reconstruction)

    def score(self, network: torch.nn.Module, kept: Sequence[int]) -> tuple[float, float]:
        """A pruned network's accuracy on the reward split, and the reward it pays with `kept` channels per unit."""
        acc = self._pruned_accuracy(network)
        return acc, self._reward(acc, self.rules.macs_budget.cost(kept))

    def _reward(self, acc: float, macs: float) -> float:
        if self.reward_kind == "accuracy":
            return acc
        return -(1.0 - acc) * math.log(macs)

    def _pruned_accuracy(self, network: torch.nn.Module) -> float:
        """A finished episode's network scored on the reward split, its BatchNorm statistics measured again first
        when the env recalibrates."""
        if self.recalibrate_bn:
            recalibrate_batchnorm(network, self._calibration)
        return self._accuracy(network)

    def _accuracy(self, network: torch.nn.Module) -> float:
        size = self.batch_size
        batches = ((self._reward_x[i:i + size], self._reward_y[i:i + size])
                   for i in range(0, len(self._reward_y), size))
        with torch.inference_mode():
            return accuracy(network, batches)

    def _frozen_costs(self, budget: str, min_keep: float) -> str:
        """What holds the cost no policy can cut, by reason: layers whose output channels stay whole (and why),
        and layers shrunk to their units' minimum."""
        whole = make_budget(budget, self.graph, 1.0, min_keep, self.device, self.round_to)
        floor = whole.floor_shares()
        by_reason: dict[str, list[tuple[str, float]]] = {}
        for layer, share in floor:
            if layer.out_unit is None:
                why = f"output frozen: {self.graph.frozen.get(layer.module, 'fixed by the data')}"
            else:
                why = f"units at their {min_keep:.0%} minimum"
            by_reason.setdefault(why, []).append((layer.module, share))
        parts = sorted(((sum(s for _, s in layers), why, layers) for why, layers in by_reason.items()), reverse=True)
        text = [f"{total:.1%} in {len(layers)} layer{'s' * (len(layers) > 1)} ({why}; largest {layers[0][0]})"
                for total, why, layers in parts[:3] if total >= 0.001]
        outside = whole.ratio(whole.min_channels) - sum(share for _, share in floor)
        if outside >= 0.001:  # a latency's constant part: activations, normalisation, each op's dispatch
            text.insert(0, f"{outside:.1%} outside the conv and linear layers")
        return "What stays: " + "; ".join(text)

    def _observation(self) -> np.ndarray:
        return self.rules.observation(self._step, self._kept, self._previous)

    # ------------------------------------------------------------------ scenario

    def unit_table(self) -> tuple[list[str], list[str], np.ndarray]:
        """Unit names, observation feature names, and each unit's observation before any pruning.

        The rows hold the static description of each unit; their dynamic fields are those of
        an episode that kept every channel so far. This is the scenario's unit table in the
        history, with the same columns as the observations recorded per trial.
        """
        return self.rules.unit_table()
