"""Budgets are one small interface: the MACs budget's closed-form wall agrees with the generic one a
new kind inherits, and a kind that does not exist is refused in one line."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from prune_gym.budgets import BUDGETS, Budget, MacsBudget, UnreachableBudget, make_budget
from prune_gym.errors import PruneGymError
from prune_gym.graph import discover_units
from prune_gym.models import build_model


class BisectedMacs(MacsBudget):
    """MACs priced alike, with the wall every kind inherits instead of MACs' closed form."""

    kind = "bisected-macs"
    max_keep = Budget.max_keep


class SelfGated(torch.nn.Module):
    """A gate conv that reads the unit it gates: its MACs, most of the net's, are quadratic in the unit's count."""

    def __init__(self):
        super().__init__()
        self.conv, self.gate = torch.nn.Conv2d(1, 32, 3), torch.nn.Conv2d(32, 32, 3, padding=1)
        self.head = torch.nn.Conv2d(32, 32, 1)
        self.fc = torch.nn.Linear(32, 10)

    def forward(self, x):
        x = self.conv(x)
        x = x * torch.sigmoid(self.gate(x))
        return self.fc(torch.relu(self.head(torch.relu(x))).mean((2, 3)))


@pytest.mark.parametrize("name, ratio", [("resnet20", 0.3), ("mobilenet_v1", 0.2), ("self-gated", 0.3)])
def test_the_generic_wall_agrees_with_the_closed_form_one(name, ratio):
    if name == "self-gated":
        graph = discover_units(SelfGated().eval(), (1, 16, 16))
        assert any(layer.in_unit == layer.out_unit is not None for layer in graph.layers)
    else:
        graph = discover_units(build_model(name, 1, 10, 16).eval(), (1, 16, 16))
    exact, generic = (cls(graph, ratio, 0.05) for cls in (MacsBudget, BisectedMacs))
    rng = np.random.default_rng(0)
    episodes = []
    for _ in range(20):
        decided = []
        for unit in range(len(graph.units)):
            wall = exact.max_keep(unit, decided)
            assert generic.max_keep(unit, decided) == wall
            decided.append(int(rng.integers(exact.min_channels[unit], wall + 1)))
        assert exact.ratio(decided) <= ratio + 1e-9  # within the wall, never over budget
        episodes.append(decided)
    episodes = np.array(episodes)  # the vector envs' batches: every episode's wall at once, the same
    for unit in range(len(graph.units)):
        walls = [exact.max_keep(unit, row) for row in episodes]
        for budget in (exact, generic):
            assert budget.max_keep_batch(unit, episodes[:, :unit]).tolist() == walls
    assert exact.ratio_batch(episodes).tolist() == [exact.ratio(row) for row in episodes]


def test_an_unknown_budget_kind_is_refused_with_the_kinds_there_are(make_env, cli):
    graph = discover_units(build_model("resnet20", 1, 10, 16).eval(), (1, 16, 16))
    with pytest.raises(PruneGymError, match="unknown budget 'watts'; choose one of: macs, latency"):
        make_budget("watts", graph, 0.3, 0.05)
    with pytest.raises(PruneGymError, match="unknown budget 'watts'"):
        make_env(budget="watts")
    result = cli("search", "--ratio", "0.3", "--budget", "watts")
    assert result.returncode == 2 and "argument --budget: invalid choice: 'watts'" in result.stderr
    assert list(BUDGETS) == ["macs", "latency"]


def test_the_observation_and_the_info_follow_the_budget_kind(make_env):
    env = make_env(target_ratio=0.5)
    assert env.unwrapped.observation_features[8:11] == ("unit_macs", "macs_reduced", "macs_rest")
    env.reset()
    for _ in env.unwrapped.units:
        *_, info = env.step(np.array([0.5], dtype=np.float32))
    assert info["macs_ratio"] == env.unwrapped.budget.ratio(info["kept_channels_per_unit"]) <= 0.5


def test_an_unreachable_ratio_says_what_holds_the_cost_and_why():
    import torch

    from prune_gym.budgets import UnreachableBudget
    from prune_gym.env import ChannelPruneEnv
    from prune_gym.workload import Workload

    torch.manual_seed(0)
    images, labels = torch.randn(8, 1, 16, 16), torch.randint(0, 10, (8,))
    workload = Workload.from_module(build_model("resnet20", 1, 10, 16), [(images, labels)], [(images, labels)])
    with pytest.raises(UnreachableBudget) as refused:
        ChannelPruneEnv(workload=workload, target_ratio=0.05, device="cpu", calibration_images=8,
                        positions_per_image=2)
    message = str(refused.value)
    assert "reachable range is [0.0660, 1] of the unpruned macs" in message
    assert "in 10 layers (output frozen: residual addition; largest conv1)" in message
    assert "in 9 layers (units at their 5% minimum; largest layer1.0.conv1)" in message


@pytest.fixture
def small_workload():
    import torch

    from prune_gym.workload import Workload

    torch.manual_seed(0)
    images, labels = torch.randn(8, 1, 16, 16), torch.randint(0, 10, (8,))
    return Workload.from_module(build_model("resnet20", 1, 10, 16), [(images, labels)], [(images, labels)])


def latency_env(workload, ratio: float):
    from prune_gym.env import ChannelPruneEnv

    return ChannelPruneEnv(workload=workload, target_ratio=ratio, device="cpu", calibration_images=8,
                           positions_per_image=2, budget="latency")


def test_no_episode_ends_over_its_latency_budget_and_the_table_is_measured_once(small_workload, isolated_home,
                                                                                 monkeypatch):
    from prune_gym.budgets import latency
    from prune_gym.policies import play, random_policy

    monkeypatch.setattr(latency, "MIN_RUN_SECONDS", 0.001)  # a coarse table, quickly: the wall is what is tested
    unpruned = latency_env(small_workload, 1.0)
    cached = list((isolated_home / "latency").glob("*.json"))
    assert len(cached) == 1
    # Halfway down the reachable range: a coarse table on a busy machine can put most of the latency outside the
    # units, so that no fixed ratio is reachable everywhere.
    ratio = (1 + unpruned.budget.ratio(unpruned.budget.min_channels)) / 2
    env = latency_env(small_workload, ratio)
    assert env.budget.table.to_json() == unpruned.budget.table.to_json()  # read back, not measured again
    assert list((isolated_home / "latency").glob("*.json")) == cached
    assert env.observation_features[8:11] == ("unit_latency", "latency_reduced", "latency_rest")
    rng = np.random.default_rng(0)
    for _ in range(5):
        info = play(env, random_policy(len(env.units), rng))
        kept = info["kept_channels_per_unit"]  # the episode's latency, recomputed from the table
        assert info["latency_ratio"] == env.budget.cost(kept) / env.budget.total <= ratio + 1e-9
        assert info["macs_ratio"] < 1


def test_a_latency_budget_below_what_is_reachable_is_refused_with_what_holds_it(small_workload, monkeypatch):
    from prune_gym.budgets import UnreachableBudget, latency

    monkeypatch.setattr(latency, "MIN_RUN_SECONDS", 0.001)
    with pytest.raises(UnreachableBudget) as refused:
        latency_env(small_workload, 0.05)
    message = str(refused.value)
    assert "of the unpruned latency" in message and "units at their 5% minimum" in message
    # The share outside the layers (activations, dispatch) is named when the measured table has one: on a
    # loaded machine the layers timed alone can add up to the whole network. The same table, read back:
    whole = latency_env(small_workload, 1.0).budget
    outside = whole.ratio(whole.min_channels) - sum(share for _, share in whole.floor_shares())
    assert ("outside the conv and linear layers" in message) == (outside >= 0.001)


@pytest.mark.parametrize("name, ratio", [("resnet20", 0.4), ("mobilenet_v1", 0.2)])
def test_round_to_keeps_each_unit_a_multiple_or_whole_and_never_breaks_the_budget(name, ratio):
    graph = discover_units(build_model(name, 1, 10, 16).eval(), (1, 16, 16))
    for cls in (MacsBudget, BisectedMacs):
        budget = make_budget("macs", graph, ratio, 0.05, round_to=8) if cls is MacsBudget else cls(graph, ratio, 0.05)
        if cls is BisectedMacs:
            budget.count_in_steps(8)
        rng = np.random.default_rng(1)
        for _ in range(20):
            decided = []
            for unit in range(len(graph.units)):
                wall = budget.max_keep(unit, decided)
                steps = np.arange(budget.min_channels[unit], wall + 1, budget.granularity[unit])
                decided.append(int(rng.choice(steps)))
            channels = budget.channels
            assert all(k % 8 == 0 or k == c for k, c in zip(decided, channels))
            assert budget.ratio(decided) <= ratio + 1e-9
            assert [budget.max_keep_batch(u, np.array([decided[:u]]))[0] for u in range(len(decided))] == [
                budget.max_keep(u, decided) for u in range(len(decided))]
    floors = [b.ratio(b.min_channels) for b in (make_budget("macs", graph, 1.0, 0.05, round_to=r) for r in (1, 8))]
    assert floors[0] < floors[1]
    with pytest.raises(UnreachableBudget, match="kept in multiples of 8, the reachable range is"):
        make_budget("macs", graph, sum(floors) / 2, 0.05, round_to=8)  # reachable in any count, not in 8s


def test_round_to_in_the_env_and_on_the_command_line(make_env, cli):
    env = make_env(target_ratio=0.4, round_to=8)
    channels = [u.channels for u in env.unwrapped.units]
    rng = np.random.default_rng(0)
    for _ in range(3):
        env.reset()
        for _ in channels:
            *_, info = env.step(rng.uniform(0, 1, 1).astype(np.float32))
        assert all(k % 8 == 0 or k == c for k, c in zip(info["kept_channels_per_unit"], channels))
        assert info["macs_ratio"] <= 0.4
    for bad in (0, 2.5):
        with pytest.raises(PruneGymError, match="round_to must be a whole number of channels, 1 or more"):
            make_env(round_to=bad)
    result = cli("search", "--ratio", "0.3", "--round-to", "0")
    assert result.returncode == 2  # argparse's usage, then its one line
    assert result.stderr.strip().splitlines()[-1] == \
        "prune-gym search: error: argument --round-to: must be a positive integer, got 0"
