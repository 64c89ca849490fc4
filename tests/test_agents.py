"""The AMC-style DDPG baseline and stock SB3 agents, for real, on the small trained ResNet-20."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import PPO, SAC, TD3
from stable_baselines3.common.monitor import Monitor

from prune_gym.agents.ddpg import AMCDDPG
from prune_gym.agents.invariant import INVARIANT_SPAN, InvariantActor
from prune_gym.agents.replay import EpisodeRewardReplayBuffer
from prune_gym.agents.config import SearchConfig
from prune_gym.agents.loop import make_env as make_search_env, run_search, scenario_of
from prune_gym.agents.searcher import truncated_normal
from prune_gym.agents.searchers.amc_ddpg import AMCDDPGSearcher
from prune_gym.agents.transfer import load_source_weights
from prune_gym.env import OBSERVATION_FEATURES
from prune_gym.errors import PruneGymError
from prune_gym.history import HistoryStore


def test_replay_buffer_gives_every_transition_the_final_reward_and_the_walled_action():
    buffer = EpisodeRewardReplayBuffer(100, spaces.Box(0, 1, (3,), np.float32), spaces.Box(0, 1, (1,), np.float32),
                                       device="cpu", moving_average_alpha=0.5)
    obs = np.zeros((1, 3), np.float32)
    for step, kept in enumerate([0.25, 0.5, 1.0]):
        done = np.array([step == 2])
        reward = np.array([0.8 if step == 2 else 0.0])
        buffer.add(obs + step, obs + step + 1, np.array([[0.9]]), reward, done, [{"kept_fraction": kept}])
        assert buffer.size() == (3 if step == 2 else 0)  # held back until the episode ends
    assert np.allclose(buffer.rewards[:3, 0], 0.8)
    assert np.allclose(buffer.actions[:3, 0, 0], [-0.5, 0.0, 1.0])  # kept fractions, scaled to [-1, 1]


def test_sampling_subtracts_a_moving_average_of_rewards():
    buffer = EpisodeRewardReplayBuffer(100, spaces.Box(0, 1, (1,), np.float32), spaces.Box(0, 1, (1,), np.float32),
                                       device="cpu", moving_average_alpha=0.5)
    for reward in (0.2, 0.6):
        buffer.add(np.zeros((1, 1)), np.zeros((1, 1)), np.zeros((1, 1)), np.array([reward]), np.array([True]), [{}])
    first = buffer._get_samples(np.array([0, 1]))
    assert np.allclose(first.rewards.numpy().ravel(), [-0.2, 0.2])  # baseline = the first batch's mean, 0.4
    second = buffer._get_samples(np.array([1, 1]))
    assert buffer.moving_average == pytest.approx(0.4 + 0.5 * (0.6 - 0.4))
    assert np.allclose(second.rewards.numpy().ravel(), 0.6 - 0.5)


def test_rebased_preloaded_rewards_move_onto_the_targets_scale_and_keep_their_order():
    buffer = EpisodeRewardReplayBuffer(100, spaces.Box(0, 1, (1,), np.float32), spaces.Box(0, 1, (1,), np.float32),
                                       device="cpu", moving_average_alpha=0.0, rebase_preloaded=True)
    add = lambda reward, preloaded: buffer.add(np.zeros((1, 1)), np.zeros((1, 1)), np.zeros((1, 1)),  # noqa: E731
                                               np.array([reward]), np.array([True]), [{"preloaded": preloaded}])
    for reward in (0.88, 0.84):  # a source at p = 0.3
        add(reward, True)
    assert buffer.preload_offset() == 0.0  # nothing to re-base on before the target's first trial
    for reward in (0.78, 0.76):  # the target at p = 0.2
        add(reward, False)
    assert buffer.preload_offset() == pytest.approx(0.77 - 0.86)
    rewards = buffer._get_samples(np.arange(4)).rewards.numpy().ravel()
    assert np.allclose(rewards, [0.79, 0.75, 0.78, 0.76])  # the source's two now straddle the target's mean
    plain = EpisodeRewardReplayBuffer(100, spaces.Box(0, 1, (1,), np.float32), spaces.Box(0, 1, (1,), np.float32),
                                      device="cpu", moving_average_alpha=0.0)
    plain.add(np.zeros((1, 1)), np.zeros((1, 1)), np.zeros((1, 1)), np.array([0.9]), np.array([True]),
              [{"preloaded": True}])
    plain.add(np.zeros((1, 1)), np.zeros((1, 1)), np.zeros((1, 1)), np.array([0.7]), np.array([True]), [{}])
    assert plain.preload_offset() == 0.0  # AMC's default: the source's rewards as they were


def test_truncated_normal_stays_in_bounds_around_its_mean():
    rng = np.random.default_rng(0)
    samples = np.array([truncated_normal(rng, np.array([0.9]), 0.2, np.array([0.0]), np.array([1.0]))
                        for _ in range(2000)])
    assert samples.min() >= 0 and samples.max() <= 1
    assert 0.7 < np.median(samples) < 0.9  # truncation pulls it below the mean, not far


@pytest.mark.parametrize("warmup_sigma", [0.05, None])
def test_warmup_actions_centre_on_the_target_ratio_or_spread_uniformly(make_env, warmup_sigma):
    env = make_env(target_ratio=0.3)
    agent = AMCDDPG("MlpPolicy", env, warmup_episodes=2, warmup_sigma=warmup_sigma, seed=0, device="cpu")
    actions = np.array([agent._sample_action(0)[0].item() for _ in range(500)])
    assert actions.min() >= 0 and actions.max() <= 1
    if warmup_sigma is None:  # AMC: uniform over [0, 1]
        assert abs(actions.mean() - 0.5) < 0.05 and abs(actions.std() - 12 ** -0.5) < 0.03
    else:
        assert abs(actions.mean() - 0.3) < 0.01 and abs(actions.std() - 0.05) < 0.01


def test_amc_ddpg_explores_trains_and_records_its_origins(make_env, tmp_path):
    env = make_env(target_ratio=0.5)
    agent = AMCDDPG("MlpPolicy", env, warmup_episodes=2, seed=0, device="cpu")
    n_units = agent.episode_length
    assert n_units == len(env.unwrapped.units) and agent.learning_starts == 2 * n_units
    assert agent.replay_buffer.buffer_size == 100 * n_units  # AMC keeps the last 100 episodes
    assert agent.sigma == 0.5
    agent.learn(total_timesteps=4 * n_units)
    assert agent.episodes_done == 4 and agent.sigma == pytest.approx(0.5 * 0.95 ** 2)
    assert agent.actor.optimizer.param_groups[0]["lr"] == 1e-4
    assert agent.critic.optimizer.param_groups[0]["lr"] == 1e-3
    assert agent.replay_buffer.size() == 4 * n_units and agent.replay_buffer.moving_average is not None
    floored = AMCDDPG("MlpPolicy", env, warmup_episodes=0, sigma_min=0.1, seed=0, device="cpu")
    floored.num_timesteps = 60 * n_units
    assert 0.5 * 0.95 ** 60 < 0.1 and floored.sigma == 0.1  # a floor under the decayed noise
    progress = AMCDDPG("MlpPolicy", env, warmup_episodes=0, sigma_schedule="progress", seed=0, device="cpu")
    progress.num_timesteps = 60 * n_units  # 60 trials, which the "episodes" schedule would count
    for accuracy, by_actor in ((0.80, False), (0.70, True), (0.798, True), (0.85, True), (0.84, True)):
        progress.record_outcome(accuracy, by_actor)
    # the actor came within half a point of the best so far twice (0.798 of 0.80, 0.85 a new best)
    assert progress.near_best_trials == 2 and progress.sigma == pytest.approx(0.5 * 0.95 ** 2)


def test_search_records_every_trial_and_finishes_the_run(make_env, tiny_checkpoint, fashion_root, tmp_path):
    config = SearchConfig(ratio=0.5, trials=5, warmup=2, seed=1, device="cpu", checkpoint=str(tiny_checkpoint),
                          data_root=str(fashion_root), env_kwargs={"calibration_images": 100})
    result = run_search(config, tmp_path / "history.h5", progress=False)
    with HistoryStore(tmp_path / "history.h5") as store:
        run = store.read_run(result.run_id)
        weights = store.load_weights(result.run_id, "final")
    assert run.info.status == "finished" and run.n_trials == 5
    assert list(run.origins) == ["warmup", "warmup", "actor", "actor", "actor"]
    assert np.all(run.macs_ratios <= 0.5) and result.best_accuracy == run.accuracies.max()
    assert np.allclose(run.final_policy, result.best_policy)
    assert run.observations.shape == (5, len(result.best_policy), 13)
    assert weights["actor"] and weights["critic"]


def test_invariant_actor_acts_the_target_ratio_times_its_prediction(make_env, tmp_path):
    env = make_env(target_ratio=0.3)
    agent = AMCDDPG("MlpPolicy", env, invariant_actor=True, warmup_episodes=1, seed=0, device="cpu")
    assert isinstance(agent.actor, InvariantActor) and isinstance(agent.actor_target, InvariantActor)
    ratio_index = OBSERVATION_FEATURES.index("target_ratio")
    obs = np.tile(env.observation_space.sample(), (3, 1))
    obs[:, ratio_index] = [0.2, 0.3, 0.5]
    last = agent.actor.mu[-2]  # the linear layer before the tanh
    for bias, invariant in ((0.0, 1.0), (0.5, INVARIANT_SPAN ** np.tanh(0.5)), (-1.0, INVARIANT_SPAN ** np.tanh(-1.0))):
        with torch.no_grad():
            last.weight.zero_()
            last.bias.fill_(bias)
        acted, _ = agent.predict(obs, deterministic=True)
        assert np.allclose(acted.ravel(), np.clip(invariant * obs[:, ratio_index], 0, 1), atol=1e-6)  # Eq. 1
        trained = agent.policy.unscale_action(agent.actor(torch.as_tensor(obs)).detach().numpy())
        assert np.allclose(trained, acted, atol=1e-6)  # training sees the same actions as acting

    agent.learn(total_timesteps=2 * agent.episode_length)
    agent.save(tmp_path / "agent.zip")
    loaded = AMCDDPG.load(tmp_path / "agent.zip", env=env, device="cpu")
    assert isinstance(loaded.actor, InvariantActor)
    assert np.allclose(loaded.predict(obs, deterministic=True)[0], agent.predict(obs, deterministic=True)[0])


def test_vanilla_transfer_starts_from_the_source_runs_actor_and_critic(tiny_checkpoint, fashion_root, tmp_path):
    history = tmp_path / "history.h5"
    source_config = SearchConfig(ratio=0.5, trials=3, warmup=2, seed=0, device="cpu", checkpoint=str(tiny_checkpoint),
                                 data_root=str(fashion_root), env_kwargs={"calibration_images": 100})
    source = run_search(source_config, history, progress=False)
    config = replace(source_config, ratio=0.3, method="vanilla", source=source.run_id, warmup=None)
    env = make_search_env(config)

    searcher = AMCDDPGSearcher(env, seed=1)
    with HistoryStore(history) as store:
        saved = store.load_weights(source.run_id)
        load_source_weights(searcher, store, source.run_id, scenario_of(env), invariant=False)
    agent = searcher.agent
    for network, target, state in ((agent.actor, agent.actor_target, saved["actor"]),
                                   (agent.critic, agent.critic_target, saved["critic"])):
        for name, value in network.state_dict().items():
            assert np.array_equal(value.numpy(), state[name]) and np.array_equal(target.state_dict()[name].numpy(),
                                                                                 state[name])
    small = AMCDDPGSearcher(env, net_arch=[32, 32])
    with HistoryStore(history) as store, pytest.raises(PruneGymError, match="does not fit"):
        load_source_weights(small, store, source.run_id, scenario_of(env), invariant=False)

    result = run_search(config, history, progress=False, env=env)
    with HistoryStore(history) as store:
        run = store.read_run(result.run_id)
    assert run.info.method == "vanilla" and run.info.sources == [source.run_id]
    assert list(run.origins) == ["actor"] * 3 and run.info.settings["warmup"] == 0  # no random warm-up
    assert np.all(run.macs_ratios <= 0.3)


def test_a_source_run_is_needed_by_and_only_by_transfer_methods(tmp_path):
    for config in (SearchConfig(method="vanilla"), SearchConfig(method="baseline", source="run-0001")):
        with pytest.raises(PruneGymError, match="source run is needed"):
            run_search(config, tmp_path / "history.h5", progress=False)
    assert not (tmp_path / "history.h5").exists()


@pytest.mark.parametrize("algorithm", [TD3, SAC, PPO])
def test_stock_sb3_agents_train_on_the_env(make_env, algorithm):
    env = Monitor(make_env(target_ratio=0.5))
    n_units = len(env.unwrapped.units)
    if algorithm is PPO:
        agent = PPO("MlpPolicy", env, n_steps=2 * n_units, batch_size=n_units, n_epochs=2, seed=0, device="cpu")
    else:
        agent = algorithm("MlpPolicy", env, learning_starts=n_units, batch_size=8, seed=0, device="cpu")
    agent.learn(total_timesteps=4 * n_units)
    returns = env.get_episode_rewards()
    assert len(returns) == 4 and all(0.1 < r <= 1 for r in returns)
