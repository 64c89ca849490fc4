"""BatchNorm recalibration: the statistics it measures, and the env's reward with it."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

import prune_gym
from prune_gym.evaluation import accuracy
from prune_gym.export import export_slim, load_slim
from prune_gym.policies import play
from prune_gym.recalibration import recalibrate_batchnorm


def conv_bn() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1), nn.BatchNorm2d(2))


def test_the_statistics_are_the_average_over_the_batches_in_any_order():
    net = conv_bn().eval()
    batches = [torch.randn(8, 3, 6, 6) * (1 + i) + i for i in range(3)]
    weights = [p.clone() for p in net.parameters()]
    assert recalibrate_batchnorm(net, batches) == 2
    bn = net[1]
    with torch.no_grad():
        outputs = [net[0](x) for x in batches]
    expected_mean = torch.stack([o.mean((0, 2, 3)) for o in outputs]).mean(0)
    expected_var = torch.stack([o.var((0, 2, 3), unbiased=True) for o in outputs]).mean(0)
    torch.testing.assert_close(bn.running_mean, expected_mean)
    torch.testing.assert_close(bn.running_var, expected_var)
    assert not net.training and bn.momentum == 0.1  # left as a user's network is evaluated
    assert all(torch.equal(a, b) for a, b in zip(weights, net.parameters()))
    reversed_net = conv_bn().eval()
    recalibrate_batchnorm(reversed_net, batches[::-1])
    for a, b in zip(net.buffers(), reversed_net.buffers()):
        torch.testing.assert_close(a, b)


def test_no_images_is_refused_before_any_statistic_changes():
    net = conv_bn().eval()
    before = [b.clone() for b in net.buffers()]
    with pytest.raises(ValueError, match="at least one batch"):
        recalibrate_batchnorm(net, [])
    assert all(torch.equal(a, b) for a, b in zip(before, net.buffers()))


def test_a_network_without_batchnorm_is_left_alone():
    net = nn.Sequential(nn.Conv2d(3, 2, 1))
    assert recalibrate_batchnorm(net, [torch.randn(2, 3, 4, 4)]) == 0


def test_the_env_scores_and_exports_the_recalibrated_network(make_env, fashion_root, tiny_checkpoint):
    policy = [0.4, 0.7, 0.3, 0.5, 0.6, 0.4, 0.5, 0.3, 0.6]
    plain, recalibrated = make_env(target_ratio=0.4), make_env(target_ratio=0.4, recalibrate_bn=True)
    plain_info = play(plain, policy)
    network = plain.unwrapped.pruned_network
    recalibrate_batchnorm(network, [plain.unwrapped.workload.calibration[:100]])  # the env's 100, one batch
    expected = accuracy(network, [tuple(plain.unwrapped.workload.reward)])
    info = play(recalibrated, policy)
    assert info["accuracy"] == pytest.approx(expected) and info["accuracy"] != plain_info["accuracy"]
    assert info["policy"] == plain_info["policy"] and info["macs_ratio"] == plain_info["macs_ratio"]
    # every episode starts from the unpruned network's statistics: the same policy scores the same again
    play(recalibrated, [1.0] * len(policy))
    assert play(recalibrated, policy)["accuracy"] == info["accuracy"]
    assert play(plain, policy)["accuracy"] == plain_info["accuracy"]


def test_the_exported_network_keeps_the_recalibrated_statistics(make_env, tmp_path):
    env = make_env(target_ratio=0.4, recalibrate_bn=True)
    info = play(env, [0.5] * len(env.unwrapped.units))
    export_slim(env, tmp_path, info)
    slim = load_slim(tmp_path)
    assert accuracy(slim, [tuple(env.unwrapped.workload.reward)]) == pytest.approx(info["accuracy"])


def test_the_native_vector_env_pays_the_recalibrated_reward(fashion_root, tiny_checkpoint):
    settings = dict(model="resnet20", dataset="fashion-mnist", target_ratio=0.4, device="cpu",
                    checkpoint=str(tiny_checkpoint), data_root=str(fashion_root), calibration_images=100,
                    recalibrate_bn=True)
    single = gym.make(prune_gym.ENV_ID, **settings)
    vector = gym.make_vec(prune_gym.ENV_ID, num_envs=2, **settings)
    n_units = len(single.unwrapped.units)
    policies = np.array([[0.5] * n_units, [0.3, 0.8] * (n_units // 2) + [0.5] * (n_units % 2)])
    vector.reset(seed=0)
    for step in range(n_units):
        _, rewards, terminated, _, _ = vector.step(policies[:, step:step + 1].astype(np.float32))
    assert terminated.all()
    expected = [play(single, p.tolist())["accuracy"] for p in policies]
    np.testing.assert_allclose(rewards, expected, atol=1e-12)
