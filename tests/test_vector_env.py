"""ChannelPrune-v0's native vector env: N episodes in one process play as N separate envs would."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import prune_gym
from prune_gym.errors import PruneGymError
from prune_gym.vector_env import ChannelPruneVectorEnv


@pytest.fixture
def settings(tiny_checkpoint, fashion_root):
    return dict(model="resnet20", dataset="fashion-mnist", target_ratio=0.4, device="cpu", checkpoint=tiny_checkpoint,
                data_root=fashion_root, calibration_images=100, reward_images=300)


def test_the_native_vector_env_plays_the_episodes_of_as_many_separate_envs(settings):
    n = 2
    vector = gym.make_vec(prune_gym.ENV_ID, num_envs=n, **settings)
    assert isinstance(vector, ChannelPruneVectorEnv)
    singles = [gym.make(prune_gym.ENV_ID, **settings) for _ in range(n)]
    units = len(singles[0].unwrapped.units)
    actions = np.random.default_rng(0).uniform(0, 1, (2, units, n, 1)).astype(np.float32)
    observations, _ = vector.reset(seed=0)
    for episode in range(2):  # the second after the next-step autoreset: working copies put back as they were
        for i, env in enumerate(singles):
            assert np.array_equal(env.reset()[0], observations[i])
        for k in range(units):
            observations, rewards, terminated, truncated, info = vector.step(actions[episode, k])
            for i, env in enumerate(singles):
                observation, reward, done, _, single_info = env.step(actions[episode, k, i])
                assert np.array_equal(observation, observations[i]) and done == terminated[i] and not truncated[i]
                assert reward == rewards[i]
        assert terminated.all() and (info["macs_ratio"] <= 0.4 + 1e-9).all()
        assert single_info["policy"] == info["policy"][-1].tolist() and single_info["accuracy"] == info["accuracy"][-1]
        observations, rewards, terminated, _, _ = vector.step(actions[0, 0])  # starts the next episodes
        assert not terminated.any() and not rewards.any()


def test_the_native_vector_env_refuses_bad_input(settings):
    with pytest.raises(PruneGymError, match="num_envs must be a whole number"):
        ChannelPruneVectorEnv(0, **settings)
    vector = ChannelPruneVectorEnv(2, **settings)
    vector.reset()
    with pytest.raises(ValueError, match="one per episode, shape \\(2, 1\\)"):
        vector.step(np.full((3, 1), 0.5))
