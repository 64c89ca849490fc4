"""Extending prune-gym as a user would, without editing the package: a preset and a budget kind of one's
own, each one registration, then a short search or episode with it. (A searcher of one's own is the README's
example, run by tests/test_searchers.py; a layer kind of one's own is in tests/test_layers.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from prune_gym.agents.config import SearchConfig
from prune_gym.agents.loop import run_search
from prune_gym.agents.presets import PRESETS, Preset, register_preset
from prune_gym.budgets import BUDGETS, Budget, register_budget
from prune_gym.errors import PruneGymError
from prune_gym.history import HistoryStore
from prune_gym.policies import play, uniform_policy


@pytest.fixture
def registered():
    """Names registered by a test, taken out again after it."""
    names: list[tuple[dict, str]] = []
    yield names
    for registry, name in names:
        registry.pop(name, None)


def test_a_preset_of_ones_own_runs_the_searches_it_names(tiny_checkpoint, fashion_root, tmp_path, registered):
    source_config = SearchConfig(ratio=0.5, trials=3, warmup=1, device="cpu", checkpoint=str(tiny_checkpoint),
                                 data_root=str(fashion_root), env_kwargs={"calibration_images": 100},
                                 agent_kwargs={"invariant_actor": True})
    history = tmp_path / "history.h5"
    source = run_search(source_config, history, progress=False).run_id
    careful = register_preset(Preset("careful", "assistant", agent={"sigma_min": 0.02, "sigma0": 0.1},
                                     assistant={"trials": 2, "noise": 0.05}))
    registered.append((PRESETS, "careful"))
    search = SearchConfig(ratio=0.3, trials=3, device="cpu", checkpoint=str(tiny_checkpoint), seed=1,
                          data_root=str(fashion_root), env_kwargs={"calibration_images": 100}, source=source,
                          preset=careful, agent_kwargs={"sigma0": 0.2})  # the user's own settings win
    result = run_search(search, history, progress=False)
    with HistoryStore(history) as store:
        run = store.read_run(result.run_id)
    assert run.info.method == "careful" and run.info.settings["preset"] == "careful"
    assert run.info.settings["agent_kwargs"] == {"sigma_min": 0.02, "sigma0": 0.2, "invariant_actor": True}
    assert run.info.settings["assistant"] == {"trials": 2, "noise": 0.05}
    assert list(run.origins) == ["assistant", "assistant", "actor"] and np.all(run.macs_ratios <= 0.3)
    # A variant of it, left unregistered, is recorded under its name; a name is registered once.
    calmer = Preset("calmer", "careful", assistant={"noise": 0.0})
    assert calmer.recorded_as == "careful" and calmer.overrides()["assistant"] == {"trials": 2, "noise": 0.0}
    with pytest.raises(PruneGymError, match="already registered"):
        register_preset(Preset("careful", "vanilla"))
    with pytest.raises(PruneGymError, match="neither a method nor a registered preset"):
        register_preset(Preset("lost", "nowhere"))


class ParamsBudget(Budget):
    """The pruned network's parameters (its conv and linear weights) as a fraction of the unpruned one's."""

    kind = "params"

    def __init__(self, graph, target_ratio, min_keep, device="cpu"):
        super().__init__(graph, target_ratio, min_keep, device)
        self.params = np.array([layer.params for layer in self.layers], dtype=np.float64)
        self.ins = np.array([-1 if layer.in_unit is None else layer.in_unit for layer in self.layers])
        self.outs = np.array([-1 if layer.out_unit is None else layer.out_unit for layer in self.layers])
        self.check_reachable()

    @property
    def total(self) -> float:
        return float(self.params.sum())

    def cost(self, kept) -> float:
        fraction = np.append(np.asarray(kept, dtype=np.float64) / self.channels, 1.0)
        return float((self.params * fraction[self.ins] * fraction[self.outs]).sum())

    def unit_cost(self, unit: int) -> float:
        return float(self.params[(self.ins == unit) | (self.outs == unit)].sum())

    def cost_after(self, unit: int) -> float:
        return float(self.params[np.maximum(self.ins, self.outs) > unit].sum()) / self.total


def test_a_budget_kind_of_ones_own_holds_every_episode_within_it(make_env, registered):
    register_budget(ParamsBudget)
    registered.append((BUDGETS, "params"))
    env = make_env(target_ratio=0.4, budget="params")
    budget = env.unwrapped.budget
    assert isinstance(budget, ParamsBudget)
    assert {"unit_params", "params_reduced", "params_rest"} <= set(env.unwrapped.observation_features)
    rng = np.random.default_rng(0)
    for policy in (uniform_policy(budget), [1.0] * len(budget.channels), rng.uniform(0, 1, len(budget.channels))):
        info = play(env, policy)
        assert budget.ratio(info["kept_channels_per_unit"]) <= 0.4 + 1e-9  # the wall holds for any cost
    with pytest.raises(PruneGymError, match="already registered"):
        register_budget(type("Other", (ParamsBudget,), {"kind": "params"}))
    with pytest.raises(PruneGymError, match="a Budget subclass with a kind"):
        register_budget(dict)
