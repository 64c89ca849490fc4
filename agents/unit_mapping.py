"""Which unit of one network plays the role of a unit of another (the paper's section IV-C).

Data augmentation across models rewrites a source policy unit by unit, so every target
unit needs a source unit to copy. Both networks are read from their unit tables (the
`Scenario` a history run stores, or `scenario_of(env)`), never from their weights:

* a unit's *stage* is the resolution its channels are computed at: the rank of its
  producer's input feature map, largest first, one rank further when the producer
  downsamples (stride above the network's smallest);
* its *relative depth* is the centre of its slot among its stage's units, (i + 1/2) / n;
* target stage s of S maps to source stage round(s (S' - 1) / (S - 1)) of S', and within
  it to the unit whose relative depth is nearest.

A unit is *critical* when it opens a stage after the first: the downsampling unit at the
boundary between two stages (ResNets' stride-2 conv1, a MobileNet's first pointwise conv
at a new resolution). Its channels carry everything the rest of the stage sees, and
our own searches keep it: the best policies of the three ResNet-20 baseline seeds keep
0.48-0.53 of layer3.0.conv1 at p = 0.2 (no other unit above 0.36) and 0.42-0.52 at
p = 0.3, the most of any unit; layer2.0.conv1 keeps more than its stage's other units in
four of those six policies (runs in benchmarks/RESULTS.md, "Baseline").
"""

from __future__ import annotations

import numpy as np

from prune_gym.errors import PruneGymError
from prune_gym.history import Scenario


def stages(scenario: Scenario) -> np.ndarray:
    """Each unit's stage, 0 for the largest resolution."""
    feature_map = _column(scenario, "feature_map")
    stride = _column(scenario, "stride")
    maps = np.unique(np.round(feature_map, 6))[::-1]  # distinct sizes, largest first
    rank = np.searchsorted(-maps, -np.round(feature_map, 6)) + (stride > stride.min())
    return np.unique(rank, return_inverse=True)[1]  # numbered without gaps


def relative_depths(scenario: Scenario) -> np.ndarray:
    """Each unit's depth within its stage: the centre of its slot, in (0, 1)."""
    stage = stages(scenario)
    depth = np.empty(len(stage))
    for s in np.unique(stage):
        members = np.flatnonzero(stage == s)
        depth[members] = (np.arange(len(members)) + 0.5) / len(members)
    return depth


def critical_units(scenario: Scenario) -> np.ndarray:
    """True for each unit that opens a stage after the first (see the module's docstring)."""
    stage = stages(scenario)
    return np.concatenate([[False], stage[1:] > stage[:-1]])


def map_units(source: Scenario, target: Scenario) -> np.ndarray:
    """For each target unit, the index of the source unit in the same relative stage and depth."""
    source_stage, target_stage = stages(source), stages(target)
    source_depth, target_depth = relative_depths(source), relative_depths(target)
    n_source, n_target = source_stage.max() + 1, target_stage.max() + 1
    mapping = np.empty(target.n_units, dtype=np.int64)
    for k in range(target.n_units):
        position = target_stage[k] * (n_source - 1) / max(1, n_target - 1)
        stage = int(np.floor(position + 0.5))  # halves round up, not to even
        candidates = np.flatnonzero(source_stage == stage)
        mapping[k] = candidates[np.argmin(np.abs(source_depth[candidates] - target_depth[k]))]
    return mapping


def _column(scenario: Scenario, feature: str) -> np.ndarray:
    if feature not in scenario.feature_names:
        raise PruneGymError(f"the units of {scenario.model} are described without {feature!r}: they cannot be "
                            f"mapped onto another model's")
    return scenario.unit_features[:, scenario.feature_names.index(feature)].astype(np.float64)
