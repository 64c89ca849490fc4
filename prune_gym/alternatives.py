"""Torch-Pruning beside prune-gym: its magnitude pruning at the same MACs, and our policies in its terms.

What a user would pick instead of a search is Torch-Pruning's uniform, global or isomorphic
magnitude pruning (`torch_pruning_at_macs`); the uniform policy itself (one kept fraction for every unit,
pruned and refit by the env) is `prune_gym.policies.uniform_policy`. A policy prune-gym
found goes the other way as Torch-Pruning's `pruning_ratio_dict` (`pruning_ratio_dict`),
so that it drops into a Torch-Pruning pipeline. Torch-Pruning is an optional dependency (the
`compare` extra): `torch_pruning_available` says whether it is installed.
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import gymnasium as gym
import torch
from torch import nn

from prune_gym.errors import PruneGymError
from prune_gym.export import read_spec
from prune_gym.graph import discover_units
from prune_gym.macs import count_macs


def torch_pruning_available() -> bool:
    return importlib.util.find_spec("torch_pruning") is not None


def unit_layers(env: gym.Env) -> set[str]:
    """The layers the env's units prune: their producers and members (the residual streams stay whole)."""
    return {name for u in env.unwrapped.units for name in (*u.producers, *u.members)}


TORCH_PRUNING_METHODS = ("uniform", "global", "isomorphic")
GLOBAL_MAX_RATIO = 0.9  # the most of any layer global ranking may remove (Torch-Pruning's max_pruning_ratio)


def torch_pruning_at_macs(model: nn.Module, input_shape: tuple[int, ...], macs_budget: int, layers: str,
                          unit_layers: set[str], method: str = "uniform", steps: int = 20) -> nn.Module:
    """Torch-Pruning's L2-magnitude pruning with the smallest ratio whose MACs fit `macs_budget`, by `method`:
    "uniform" removes the same share of every layer, "global" ranks every group's channels together,
    "isomorphic" ranks together only the groups of the same structure (Torch-Pruning's isomorphic
    pruning); global and isomorphic remove at most `GLOBAL_MAX_RATIO` of a layer. With `layers` "units"
    it prunes only `unit_layers` (our units' producers and members), with "all" every layer its
    dependency graph can."""
    import torch_pruning as tp

    if method not in TORCH_PRUNING_METHODS:
        raise PruneGymError(f"unknown Torch-Pruning method {method!r}; choose one of: "
                            f"{', '.join(TORCH_PRUNING_METHODS)}")
    example = torch.zeros(1, *input_shape)
    ranked = {} if method == "uniform" else {"global_pruning": True, "max_pruning_ratio": GLOBAL_MAX_RATIO,
                                             "isomorphic": method == "isomorphic"}

    def pruned(ratio: float) -> nn.Module:
        candidate = copy.deepcopy(model).eval()
        modules = dict(candidate.named_modules())
        prunable = (nn.Conv2d, nn.Linear)
        ignored = [m for name, m in modules.items() if isinstance(m, prunable) and
                   (layers == "units" and name not in unit_layers or isinstance(m, nn.Linear))]
        pruner = tp.pruner.BasePruner(candidate, example, importance=tp.importance.MagnitudeImportance(p=2),
                                      pruning_ratio=ratio, ignored_layers=ignored, **ranked)
        pruner.step()
        try:
            with torch.no_grad():
                candidate(example)
        except RuntimeError as exc:
            raise PruneGymError(f"Torch-Pruning's model, its {layers} layers pruned, does not run ({exc}); "
                                f"its dependency graph mis-groups this architecture (e.g. a zero-padded "
                                f"shortcut)") from None
        return candidate

    low, high = 0.0, 1.0  # bisect the ratio: MACs fall as it rises
    for _ in range(steps):
        middle = (low + high) / 2
        if count_macs(pruned(middle), input_shape) <= macs_budget:
            high = middle
        else:
            low = middle
    slim = pruned(high)
    if count_macs(slim, input_shape) > macs_budget:  # no ratio was within budget
        raise PruneGymError(f"Torch-Pruning's {method} pruning of the {layers} layers cannot reach {macs_budget} MACs")
    return slim


def pruning_ratio_dict(export: str | Path, model: nn.Module) -> dict[nn.Module | tuple[nn.Module, ...], float]:
    """A slim export's policy (its directory or spec.json) as Torch-Pruning's `pruning_ratio_dict` for `model`,
    the unpruned network: by each pruned unit's producer layers (a tuple where several share its channels),
    the ratio with which Torch-Pruning keeps the export's channel count (it keeps int(channels * (1 - ratio))).
    Pass it with `pruning_ratio=0` so that the layers it leaves out (the units kept whole, the residual
    streams) stay whole; Torch-Pruning chooses which channels by its own importance."""
    spec = read_spec(export)
    graph = discover_units(model, tuple(spec["input_shape"]), spec.get("leaf_modules", ()),
                           spec.get("residual_streams", False))
    graph_units = {u.producer: u for u in graph.units}
    modules = dict(model.named_modules())
    ratios: dict[nn.Module | tuple[nn.Module, ...], float] = {}
    for unit in spec["units"]:
        if unit["kept"] == unit["channels"]:
            continue
        producers = tuple(modules[name] for name in graph_units[unit["producer"]].producers)
        ratios[producers if len(producers) > 1 else producers[0]] = 1 - (unit["kept"] + 0.5) / unit["channels"]
    return ratios

