"""Transfer from history: Eq. 2, replaying a policy through another scenario, the augmented search."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from prune_gym.agents.augmentation import augmented_episodes, cross_model_policy, rescale_actions, rescale_policy
from prune_gym.agents.ddpg import AMCDDPG
from prune_gym.agents.invariant import InvariantActor
from prune_gym.agents.config import SearchConfig
from prune_gym.agents.presets.history import HISTORY
from prune_gym.agents.loop import _start_from_source, make_env, run_search, scenario_of
from prune_gym.agents.searchers.amc_ddpg import AMCDDPGSearcher
from prune_gym.agents.transfer import load_source_weights
from prune_gym.agents.unit_mapping import critical_units
from prune_gym.env import ChannelPruneEnv
from prune_gym.errors import PruneGymError
from prune_gym.history import HistoryStore
from prune_gym.models import build_model
from prune_gym.policies import random_policy
from prune_gym.workload import Workload


def test_eq2_scales_the_pruned_fraction_by_the_ratio_of_pruned_budgets():
    actions = np.array([1.0, 0.5, 0.75, 0.2])
    assert np.allclose(rescale_actions(actions, 0.5, 0.2), [1.0, 0.2, 0.6, 0.0])  # 1 - 1.6 * (1 - a), in [0, 1]
    assert np.allclose(rescale_actions(actions, 0.3, 0.3), actions)
    assert np.allclose(rescale_actions([0.3], 0.3, 0.6), [0.6])  # the uniform policy stays uniform
    with pytest.raises(PruneGymError, match="source ratio in"):
        rescale_actions(actions, 1.0, 0.5)


def test_budget_rescale_keeps_the_policys_shape_and_fills_the_target_budget(make_env):
    env = make_env(target_ratio=0.2).unwrapped
    source = np.linspace(0.2, 0.6, len(env.units))  # a policy of p = 0.3, say
    rescaled = rescale_policy(source, 0.3, env, "budget")
    assert np.allclose(rescaled / source, rescaled[0] / source[0])  # one factor for every unit
    _, kept = env.simulate(rescaled)
    assert 0.9 * 0.2 < env.budget.ratio(np.round(kept * env.budget.channels)) <= 0.2
    eq2 = rescale_policy(source, 0.3, env)  # the paper's Eq. 2, the default
    assert np.allclose(eq2, rescale_actions(source, 0.3, 0.2)) and eq2.min() < rescaled.min()
    with pytest.raises(PruneGymError, match="unknown rescale"):
        rescale_policy(source, 0.3, env, "linear")


def test_power_rescale_spreads_the_units_by_the_ratios_log_ratio_and_fills_the_budget(make_env):
    env = make_env(target_ratio=0.2).unwrapped
    source = np.linspace(0.2, 0.6, len(env.units))
    power = np.log(0.2) / np.log(0.5)  # 2.32: down from 0.5, the policy's spread grows
    rescaled = rescale_policy(source, 0.5, env, "power")
    unclipped = rescaled < 1
    assert np.allclose(rescaled[unclipped] / source[unclipped] ** power, rescaled[0] / source[0] ** power)
    assert (rescaled > 0).all() and (np.diff(rescaled) >= 0).all()  # the source's order, no unit sent to zero
    _, kept = env.simulate(rescaled)
    assert 0.9 * 0.2 < env.budget.ratio(np.round(kept * env.budget.channels)) <= 0.2
    assert rescaled[0] / rescaled[-1] < rescale_policy(source, 0.5, env, "budget")[0] / rescale_policy(
        source, 0.5, env, "budget")[-1]
    up = rescale_policy(source, 0.2, make_env(target_ratio=0.5).unwrapped, "power")  # ... and shrinks going up
    assert up[0] / up[-1] > source[0] / source[-1]


def test_simulate_sees_what_playing_the_policy_sees_and_keeps_the_budget(make_env):
    env = make_env(target_ratio=0.3)
    rng = np.random.default_rng(0)
    for _ in range(3):
        policy = random_policy(len(env.unwrapped.units), rng)
        observations, kept = env.unwrapped.simulate(policy)
        played = [env.reset()[0]]
        for fraction in policy:
            obs, _, terminated, _, info = env.step(np.array([fraction], dtype=np.float32))
            played.append(obs)
        assert np.allclose(observations, np.stack(played)) and np.allclose(kept, info["policy"])
        assert info["macs_ratio"] <= 0.3


@pytest.fixture(scope="module")
def source_run(tiny_checkpoint, fashion_root, tmp_path_factory):
    """A finished 4-trial run at p = 0.5 with an invariant actor, in a history file of its own."""
    config = SearchConfig(ratio=0.5, trials=4, warmup=2, seed=0, device="cpu", checkpoint=str(tiny_checkpoint),
                          data_root=str(fashion_root), env_kwargs={"calibration_images": 100},
                          agent_kwargs={"invariant_actor": True})
    history = tmp_path_factory.mktemp("transfer") / "history.h5"
    return config, history, run_search(config, history, progress=False).run_id


def test_augmented_episodes_rewrite_the_source_for_the_target_ratio(source_run):
    config, history, source_id = source_run
    env = make_env(dataclasses.replace(config, ratio=0.2))
    with HistoryStore(history) as store:
        source = store.read_run(source_id)
    episodes = augmented_episodes(source, env.unwrapped, scenario_of(env), last=3)
    assert len(episodes) == 3
    for t, episode in zip(range(1, 4), episodes):
        expected = env.unwrapped.simulate(rescale_actions(source.actions[t], 0.5, 0.2))
        assert np.allclose(episode.observations, expected[0]) and np.allclose(episode.fractions, expected[1])
        assert episode.reward == pytest.approx(source.rewards[t])
        assert env.unwrapped.budget.ratio(episode.fractions * env.unwrapped.budget.channels) <= 0.2 + 1e-6

    searcher = AMCDDPGSearcher(env, warmup=0, invariant_actor=True)
    searcher.preload(episodes)
    agent = searcher.agent
    n_units = len(env.unwrapped.units)
    assert agent.replay_buffer.size() == 3 * n_units
    rewards = agent.replay_buffer.rewards[:3 * n_units, 0].reshape(3, n_units)
    assert np.allclose(rewards, np.array([e.reward for e in episodes])[:, None])  # the final reward on every step



def test_augmented_episodes_carry_a_resnet20_run_over_to_resnet56(source_run):
    config, history, source_id = source_run
    torch.manual_seed(0)
    images, labels = torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,))
    workload = Workload.from_module(build_model("resnet56", 1, 10, 28), [(images[:8], labels[:8])],
                                    [(images[8:], labels[8:])], name="resnet56")
    env = ChannelPruneEnv(workload=workload, target_ratio=0.3, device="cpu", positions_per_image=2)
    target = scenario_of(env)
    with HistoryStore(history) as store:
        source = store.read_run(source_id)
    episodes = augmented_episodes(source, env, target, last=3)
    for t, episode in zip(range(1, 4), episodes):
        mapped = cross_model_policy(source.actions[t], source.info.scenario, target, env.budget)
        assert np.all(mapped[critical_units(target)] == 1.0)
        observations, kept = env.simulate(rescale_actions(mapped, 0.5, 0.3))  # mapped, then Eq. 2, then the wall
        assert np.allclose(episode.observations, observations) and np.allclose(episode.fractions, kept)
        assert episode.observations.shape == (27 + 1, len(target.feature_names))
        assert env.budget.ratio(np.round(episode.fractions * env.budget.channels)) <= 0.3 + 1e-9
        assert episode.reward == pytest.approx(source.rewards[t])

    other = dataclasses.replace(target, feature_names=[f"{name}'" for name in target.feature_names])
    with pytest.raises(PruneGymError, match="cannot be mapped"):
        augmented_episodes(source, env, other, last=3)


def test_augmented_search_starts_from_the_source_and_records_it(source_run):
    config, history, source_id = source_run
    target = dataclasses.replace(config, ratio=0.3, method="augmented", source=source_id, warmup=None, trials=2,
                                 agent_kwargs={})
    result = run_search(target, history, progress=False)
    with HistoryStore(history) as store:
        run = store.read_run(result.run_id)
    assert run.info.method == "augmented" and run.info.sources == [source_id]
    assert run.info.settings["agent_kwargs"]["invariant_actor"] is True  # so it can seed later augmented runs
    assert list(run.origins) == ["actor", "actor"] and np.all(run.macs_ratios <= 0.3)


def test_the_history_preset_is_the_assistant_with_the_fixes_that_paid(source_run):
    config, history, source_id = source_run
    target = dataclasses.replace(config, ratio=0.2, preset=HISTORY, source=source_id, warmup=None, trials=2,
                                 agent_kwargs={"sigma_min": 0.2})  # a fix's setting stays the user's to change
    result = run_search(target, history, progress=False)
    with HistoryStore(history) as store:
        run = store.read_run(result.run_id)
    assert run.info.settings["agent_kwargs"] == {"invariant_actor": True, "rebase_preloaded": True, "sigma_min": 0.2}
    assert run.info.method == "history" and run.info.settings["method"] == "history"
    assert run.info.settings["assistant"] == HISTORY.assistant == {"handover": "earned", "incumbent": 5,
                                                                   "keep_until": 300}
    # Its records: the source's policies raised to ln p / ln p_source before filling the budget, from a source as
    # far as 0.5 is from 0.2 (the loop reads the source's ratio); scaled alone from a nearer one.
    assert run.info.settings["assistant_rescale"] == "power" and run.info.settings["source_ratio"] == 0.5
    assert target.resolve().records_rescale == "budget"  # the source's ratio unknown
    assert target.resolve(source_ratio=0.5).records_rescale == "power"
    assert dataclasses.replace(target, ratio=0.3).resolve(source_ratio=0.5).records_rescale == "budget"
    assert dataclasses.replace(target, assistant_rescale="eq2").resolve(source_ratio=0.5).records_rescale == "eq2"
    assert list(run.origins) == ["assistant", "assistant"]
    # The assistant's settings too stay the user's; a searcher without the agent's fixes takes the assistant's alone.
    tpe = dataclasses.replace(target, agent="tpe", agent_kwargs={}, assistant={"incumbent": 0, "trials": 10}).resolve()
    assert tpe.agent_kwargs == {} and tpe.assistant == {**HISTORY.assistant, "incumbent": 0, "trials": 10}


def test_the_assistant_can_act_from_records_rescaled_otherwise_than_the_preloaded_trials(source_run):
    config, history, source_id = source_run
    target = dataclasses.replace(config, ratio=0.2, preset=HISTORY, source=source_id, warmup=None, trials=1,
                                 agent_kwargs={}, assistant_rescale="budget").resolve(source_ratio=0.5)
    env = make_env(target)
    searcher = AMCDDPGSearcher(env, warmup=0, **target.agent_kwargs)
    with HistoryStore(history) as store:
        source = store.read_run(source_id)
        assisted = _start_from_source(searcher, target, env, scenario_of(env), store)
    budget = augmented_episodes(source, env.unwrapped, scenario_of(env), source.n_trials, "budget")
    eq2 = augmented_episodes(source, env.unwrapped, scenario_of(env), source.n_trials)
    assert np.allclose(assisted.assistant.actions, np.concatenate([e.fractions for e in budget]))
    n_units = len(env.unwrapped.units)
    preloaded = searcher.agent.replay_buffer.observations[:len(eq2) * n_units, 0]
    assert np.allclose(preloaded, np.concatenate([e.observations[:-1] for e in eq2]))  # still Eq. 2's
    assert not np.allclose(preloaded, np.concatenate([e.observations[:-1] for e in budget]))
    # Records rescaled without an assistant to read them: refused.
    with pytest.raises(PruneGymError, match="has no assistant"):
        dataclasses.replace(config, ratio=0.2, method="augmented", source=source_id, assistant_rescale="budget").resolve()


def test_an_actor_only_seeds_an_actor_of_its_own_kind(source_run):
    config, history, source_id = source_run
    env = make_env(config)
    plain = AMCDDPGSearcher(env)
    with HistoryStore(history) as store, pytest.raises(PruneGymError, match="predicts the invariant"):
        load_source_weights(plain, store, source_id, scenario_of(env), invariant=False)
    invariant = AMCDDPGSearcher(env, invariant_actor=True)
    with HistoryStore(history) as store:
        load_source_weights(invariant, store, source_id, scenario_of(env), invariant=True)
    assert isinstance(invariant.agent.actor, InvariantActor)
