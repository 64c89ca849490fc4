"""What a user would pick instead of a search: Torch-Pruning's uniform magnitude pruning at the same MACs.

The uniform policy itself (one kept fraction for every unit, pruned and refit by the env) is
`prune_gym.policies.uniform_policy`. Torch-Pruning is an optional dependency (the `compare`
extra): `torch_pruning_available` says whether it is installed.
"""

from __future__ import annotations

import copy
import importlib.util

import gymnasium as gym
import torch
from torch import nn

from prune_gym.errors import PruneGymError
from prune_gym.macs import count_macs


def torch_pruning_available() -> bool:
    return importlib.util.find_spec("torch_pruning") is not None


def unit_layers(env: gym.Env) -> set[str]:
    """The layers the env's units prune: their producers and members (the residual streams stay whole)."""
    return {name for u in env.unwrapped.units for name in (*u.producers, *u.members)}


def torch_pruning_uniform(model: nn.Module, input_shape: tuple[int, ...], macs_budget: int, layers: str,
                          unit_layers: set[str], steps: int = 20) -> nn.Module:
    """Torch-Pruning's uniform L2-magnitude pruning with the smallest ratio whose MACs fit `macs_budget`;
    with `layers` "units" it prunes only `unit_layers` (our units' producers and members)."""
    import torch_pruning as tp

    example = torch.zeros(1, *input_shape)

    def pruned(ratio: float) -> nn.Module:
        candidate = copy.deepcopy(model).eval()
        modules = dict(candidate.named_modules())
        prunable = (nn.Conv2d, nn.Linear)
        ignored = [m for name, m in modules.items() if isinstance(m, prunable) and
                   (layers == "units" and name not in unit_layers or isinstance(m, nn.Linear))]
        pruner = tp.pruner.BasePruner(candidate, example, importance=tp.importance.MagnitudeImportance(p=2),
                                      pruning_ratio=ratio, ignored_layers=ignored)
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
        raise PruneGymError(f"Torch-Pruning's uniform pruning of the {layers} layers cannot reach {macs_budget} MACs")
    return slim
