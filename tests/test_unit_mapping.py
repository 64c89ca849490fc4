"""The unit mapping and critical-unit rule of cross-model data augmentation, on the zoo's real graphs."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from prune_gym.agents.augmentation import cross_model_policy, rescale_actions
from prune_gym.agents.loop import scenario_of
from prune_gym.agents.unit_mapping import critical_units, map_units, stages
from prune_gym.env import ChannelPruneEnv
from prune_gym.models import build_model
from prune_gym.workload import Workload


@pytest.fixture(scope="module")
def envs() -> dict[str, ChannelPruneEnv]:
    """Randomly initialised zoo models at Fashion-MNIST's size: the mapping reads only their unit tables."""
    torch.manual_seed(0)
    images, labels = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
    built = {}
    for name in ("resnet20", "resnet56", "mobilenet_v1"):
        workload = Workload.from_module(build_model(name, 1, 10, 28), [(images[:8], labels[:8])],
                                        [(images[8:], labels[8:])], name=name)
        built[name] = ChannelPruneEnv(workload=workload, target_ratio=0.3, device="cpu", positions_per_image=2)
    return built


def test_stages_follow_the_resolution_and_critical_units_open_them(envs):
    r20, r56, mobilenet = (scenario_of(envs[n]) for n in ("resnet20", "resnet56", "mobilenet_v1"))
    assert stages(r20).tolist() == [0] * 3 + [1] * 3 + [2] * 3  # the stride-2 conv1 computes the next stage
    assert stages(r56).tolist() == [0] * 9 + [1] * 9 + [2] * 9
    assert stages(mobilenet).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 3, 3, 3, 3, 4, 4]
    assert np.flatnonzero(critical_units(r20)).tolist() == [3, 6]  # layer2.0.conv1, layer3.0.conv1
    assert np.flatnonzero(critical_units(r56)).tolist() == [9, 18]
    assert np.flatnonzero(critical_units(mobilenet)).tolist() == [2, 4, 6, 12]  # first pointwise at a new size


def test_resnet20_and_resnet56_map_block_for_block(envs):
    r20, r56 = scenario_of(envs["resnet20"]), scenario_of(envs["resnet56"])
    assert map_units(r20, r56).tolist() == np.repeat(np.arange(9), 3).tolist()  # each ResNet-20 block: 3 of 56's
    assert map_units(r56, r20).tolist() == [1, 4, 7, 10, 13, 16, 19, 22, 25]  # the middle block of each three
    assert all(critical_units(r20)[map_units(r20, r56)][critical_units(r56)])  # critical maps onto critical


def test_resnet20_and_mobilenet_map_stages_by_relative_position(envs):
    r20, mobilenet = scenario_of(envs["resnet20"]), scenario_of(envs["mobilenet_v1"])
    # MobileNet's 5 stages onto ResNet-20's 3: stages 0 | 1, 2 | 3, 4; then the nearest relative depth.
    assert map_units(r20, mobilenet).tolist() == [0, 2, 3, 5, 3, 5, 6, 6, 7, 7, 8, 8, 6, 8]
    # ResNet-20's 3 stages onto MobileNet's stages 0, 2 and 4; a tie in depth takes the shallower unit.
    assert map_units(mobilenet, r20).tolist() == [0, 0, 1, 4, 4, 5, 12, 12, 13]


@pytest.mark.parametrize("source_name, target_name", [("resnet20", "resnet56"), ("resnet20", "mobilenet_v1"),
                                                      ("mobilenet_v1", "resnet20")])
def test_cross_model_policies_keep_critical_units_whole_and_the_source_ratio(envs, source_name, target_name):
    source, target_env = scenario_of(envs[source_name]), envs[target_name]
    target = scenario_of(target_env)
    budget = target_env.budget
    source_ratio = 0.5
    source = dataclasses.replace(source, target_ratio=source_ratio)
    fractions = np.random.default_rng(0).uniform(0.2, 0.9, source.n_units)
    policy = cross_model_policy(fractions, source, target, budget)
    critical = critical_units(target)
    assert np.all(policy[critical] == 1.0)
    mapped = fractions[map_units(source, target)]
    free = ~critical & (policy < 1)
    assert np.allclose(policy[free] / mapped[free], policy[free][0] / mapped[free][0])  # one common factor
    one_channel = max(budget.unit_cost(k) / c for k, c in enumerate(budget.channels)) / budget.total
    counts = np.clip(np.round(policy * budget.channels), budget.min_channels, budget.channels)
    assert source_ratio - 2 * one_channel <= budget.ratio(counts) <= source_ratio  # the source's ratio, met

    _, kept = target_env.simulate(rescale_actions(policy, source_ratio, target_env.target_ratio))
    assert budget.ratio(np.round(kept * budget.channels)) <= target_env.target_ratio + 1e-9  # the target's wall
