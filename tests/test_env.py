"""ChannelPrune-v0 through its public API, on a small trained ResNet-20 and on every zoo model."""

from __future__ import annotations

import importlib
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

import prune_gym
from prune_gym.datasets import dataset_names
from prune_gym.env import OBSERVATION_FEATURES, ChannelPruneEnv
from prune_gym.errors import PruneGymError, UnknownNameError
from prune_gym.export import export_slim, load_slim
from prune_gym.models import build_model, model_names
from prune_gym.models.cifar_resnet import CifarResNet
from prune_gym.policies import play, random_policy, uniform_policy
from prune_gym.workload import Workload


def test_registration_is_idempotent():
    importlib.reload(prune_gym)
    importlib.reload(prune_gym)
    spec = gym.spec(prune_gym.ENV_ID)
    assert spec.entry_point == "prune_gym.env:ChannelPruneEnv" and spec.max_episode_steps is None


def test_gymnasium_and_sb3_checkers_pass(make_env):
    env = make_env()
    gym_check_env(env.unwrapped)
    sb3_check_env(env.unwrapped, warn=True)


def test_episode_observations_rewards_and_final_info(make_env):
    env = make_env(target_ratio=0.5)
    obs, _ = env.reset(seed=0)
    n_units = len(env.unwrapped.units)
    assert obs.shape == (len(OBSERVATION_FEATURES),) and obs.dtype == np.float32
    assert obs[0] == 0 and obs[-1] == pytest.approx(0.5)
    for step in range(n_units):
        obs, reward, terminated, truncated, info = env.step(np.array([0.5], dtype=np.float32))
        assert env.observation_space.contains(obs) and not truncated
        assert terminated == (step == n_units - 1)
        assert reward == (info["accuracy"] if terminated else 0.0)
    assert 0.1 < info["accuracy"] <= 1 and info["macs_ratio"] <= 0.5
    assert len(info["policy"]) == len(info["kept_channels_per_unit"]) == n_units
    assert 0 < info["params_ratio"] < 1
    assert info["original_accuracy"] >= info["accuracy"] - 0.05


def test_acc_log_flops_reward(make_env):
    env = make_env(reward="acc_log_flops")
    env.reset()
    for _ in env.unwrapped.units:
        _, reward, _, _, info = env.step(np.array([0.5], dtype=np.float32))
    assert reward == pytest.approx(-(1 - info["accuracy"]) * np.log(info["macs"]))


def test_same_seed_same_observations_and_rewards(make_env):
    def rollout(env, seed):
        rng = np.random.default_rng(seed)
        observations, rewards = [env.reset(seed=seed)[0]], []
        for fraction in random_policy(len(env.unwrapped.units), rng):
            obs, reward, *_ = env.step(np.array([fraction], dtype=np.float32))
            observations.append(obs)
            rewards.append(reward)
        return np.array(observations), rewards

    env = make_env()
    first = rollout(env, 3)
    again = rollout(env, 3)
    other_env = rollout(make_env(), 3)
    for run in (again, other_env):
        assert np.array_equal(first[0], run[0]) and first[1] == run[1]


def test_reconstruction_beats_magnitude_pruning(make_env):
    accuracies = {}
    for mode in ("pruned", "original", "magnitude"):
        env = make_env(target_ratio=0.3, reconstruction=mode)
        accuracies[mode] = play(env, uniform_policy(env.unwrapped.budget))["accuracy"]
    assert accuracies["pruned"] > accuracies["magnitude"] + 0.05, accuracies


def test_bad_input_is_refused_and_the_env_stays_usable(make_env):
    env = make_env()
    env.reset(seed=0)
    for bad in (np.array([np.nan]), np.array([np.inf]), np.array([0.5, 0.5]), "half"):
        with pytest.raises(ValueError, match="action"):
            env.step(bad)
    play(env, [0.5] * len(env.unwrapped.units))
    with pytest.raises(gym.error.ResetNeeded):
        env.step(np.array([0.5]))
    env.reset()
    _, _, terminated, _, _ = env.step(np.array([0.5], dtype=np.float32))
    assert not terminated


def test_unreachable_ratio_and_unknown_device_are_refused(make_env):
    with pytest.raises(PruneGymError, match=r"reachable range is \[0\.0\d+, 1\]"):
        make_env(target_ratio=0.01)
    with pytest.raises(PruneGymError, match="reachable range"):
        make_env(target_ratio=1.5)
    with pytest.raises(PruneGymError, match="unknown device 'tpu'"):
        make_env(device="tpu")
    with pytest.raises(PruneGymError, match="unknown reconstruction"):
        make_env(reconstruction="lstsq")


def test_missing_pretrained_checkpoint_says_how_to_get_one(fashion_root):
    """ResNet-18: no network of it ships, and this test's cache holds none."""
    with pytest.raises(PruneGymError, match="none ships with prune-gym; run `prune-gym pretrain --model resnet18 "
                                            "--dataset fashion-mnist`"):
        gym.make(prune_gym.ENV_ID, model="resnet18", data_root=fashion_root, device="cpu")


@pytest.mark.parametrize("argument, choices", [("model", model_names()), ("dataset", dataset_names())])
def test_an_unknown_model_or_data_set_is_refused_in_one_line_that_lists_the_choices(argument, choices, tiny_checkpoint):
    for checkpoint in (None, tiny_checkpoint):  # named before any checkpoint is looked for or read
        with pytest.raises(UnknownNameError) as refusal:
            gym.make(prune_gym.ENV_ID, **{argument: "nope"}, checkpoint=checkpoint, device="cpu")
        message = str(refusal.value)
        assert "'nope'" in message and "\n" not in message and "pretrain" not in message
        assert message.endswith("choose one of: " + ", ".join(choices))


def macs_by_torch(model: torch.nn.Module, shape: tuple[int, ...]) -> float:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(torch.zeros(1, *shape))
    return counter.get_total_flops() / 2


@pytest.mark.parametrize("name", model_names())
def test_every_zoo_model_meets_the_budget_and_exports_its_macs(name, tmp_path):
    """Random policies on randomly initialised models: only the budget and the shapes matter here."""
    torch.manual_seed(0)
    shape = (1, 16, 16)
    images = torch.randn(24, *shape)
    labels = torch.randint(0, 10, (24,))
    model = build_model(name, 1, 10, 16)
    workload = Workload.from_module(model, [(images[:8], labels[:8])], [(images[8:], labels[8:])], name=name)
    rng = np.random.default_rng(0)
    for p, mode in ((0.3, "magnitude"), (0.5, "pruned")):
        env = ChannelPruneEnv(workload=workload, target_ratio=p, device="cpu", reconstruction=mode,
                              positions_per_image=4)
        budget = env.budget
        one_channel = max(budget.unit_cost(u.index) / u.channels for u in env.units) / budget.total
        for _ in range(2):
            info = play(env, random_policy(len(env.units), rng))
            assert info["macs_ratio"] <= p + one_channel
        export_slim(env, tmp_path / f"{p}", info)
        slim = load_slim(tmp_path / f"{p}", model=build_model(name, 1, 10, 16))
        assert macs_by_torch(slim, shape) == pytest.approx(info["macs"], rel=0.01)


class ChunkedNet(nn.Module):
    """conv1's channels feed conv2 whole and, cut in two by chunk, conv3 and conv4; conv2's are a unit."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 16, 3, padding=1), nn.Conv2d(16, 8, 3, padding=1)
        self.conv3, self.conv4 = nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
        self.conv5, self.fc = nn.Conv2d(8, 8, 3, padding=1), nn.Linear(8, 10)

    def forward(self, x):
        y = torch.relu(self.conv1(x))
        a, b = self.parts(y)
        return self.fc((self.conv5(torch.relu(self.conv2(y))) + self.conv3(a) + self.conv4(b)).mean((2, 3)))

    def parts(self, y):
        return y.chunk(2, 1)


class SplitNet(ChunkedNet):
    """The same cut written as a split of 8 channels: a fixed size the slim network could not follow."""

    def parts(self, y):
        return y.split(8, 1)


class ConcatNet(nn.Module):
    """An Inception-like module: branches of 8 and 4 channels concatenated, read whole and in part."""

    def __init__(self):
        super().__init__()
        self.left, self.bn, self.right = nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.Conv2d(1, 4, 3, padding=1)
        self.after, self.left_only, self.fc = nn.Conv2d(12, 8, 3, padding=1), nn.Conv2d(8, 8, 1), nn.Linear(8, 10)

    def forward(self, x):
        left = torch.relu(self.bn(self.left(x)))
        y = self.after(torch.relu(torch.cat([left, self.right(x)], 1))) + self.left_only(left)
        return self.fc(y.mean((2, 3)))


class TinyCifarResNet(CifarResNet):
    """ResNet-8: one block a stage, its option-A shortcuts padding 16 -> 32 -> 64 channels."""

    def __init__(self):
        super().__init__(8, in_channels=1)


class WidthMixingNet(nn.Module):
    """A Linear over the width of a (N, C, H, W) map: it reads the last dimension, not the channels."""

    def __init__(self):
        super().__init__()
        self.conv1, self.mix, self.conv2 = nn.Conv2d(1, 16, 3, padding=1), nn.Linear(12, 12), nn.Conv2d(16, 8, 1)
        self.conv3, self.fc = nn.Conv2d(8, 8, 1), nn.Linear(8, 10)

    def forward(self, x):
        y = self.conv2(self.mix(torch.relu(self.conv1(x))))
        return self.fc(self.conv3(torch.relu(y)).mean((2, 3)))


class ChannelsLastNet(nn.Module):
    """An MLP on (N, H, W, C) tensors between two convs, as in ConvNeXt's blocks."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 16, 3, padding=1), nn.Conv2d(16, 16, 3, padding=1)
        self.mlp1, self.mlp2 = nn.Linear(16, 32), nn.Linear(32, 16)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        y = self.mlp2(F.gelu(self.mlp1(self.conv1(x).permute(0, 2, 3, 1)))).permute(0, 3, 1, 2)
        return self.fc(torch.relu(self.conv2(y)).mean((2, 3)))


class HardGatedNet(nn.Module):
    """A squeeze-excitation gate closed by a Hardsigmoid, as in MobileNetV3."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 16, 3, padding=1), nn.Conv2d(16, 16, 1)
        self.squeeze, self.expand, self.gate = nn.Conv2d(16, 4, 1), nn.Conv2d(4, 16, 1), nn.Hardsigmoid()
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        y = torch.relu(self.conv1(x))
        y = y * self.gate(self.expand(torch.relu(self.squeeze(y.mean((2, 3), keepdim=True)))))
        return self.fc(torch.relu(self.conv2(y)).mean((2, 3)))


@pytest.mark.parametrize("net, frozen, reason", [
    (SplitNet, "conv1", "parts of a tensor (split at node split)"),
    (WidthMixingNet, "conv1", "Linear at mix reads dimension -1 of a tensor whose channels are in dimension 1"),
    (WidthMixingNet, "mix", "Conv2d at conv2 reads dimension 1 of a tensor whose channels are in dimension -1"),
])
def test_coupled_channels_are_frozen_with_their_reason_and_episodes_run(net, frozen, reason):
    """Each of these once crashed an episode or named the wrong op; the user's model is left as it was."""
    torch.manual_seed(0)
    model = net().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images, labels = torch.randn(48, 1, 12, 12), torch.randint(0, 10, (48,))
    workload = Workload.from_module(model, [(images[:24], labels[:24])], [(images[24:], labels[24:])])
    env = ChannelPruneEnv(workload=workload, target_ratio=0.8, device="cpu", calibration_images=24)
    assert env.graph.frozen[frozen] == reason
    info = play(env, uniform_policy(env.budget))
    assert info["macs_ratio"] <= 0.8 and 0.0 <= info["accuracy"] <= 1.0
    assert model.training and all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def prune_refit_and_export(net: type[nn.Module], ratio: float, out, images: int = 48,
                           **env_kwargs) -> tuple[ChannelPruneEnv, dict]:
    """A uniform episode of `net` refit by reconstruction (on half the `images`): it ends within budget, its
    logits lie closer to the original's than magnitude pruning's, and its slim export, loaded into a fresh
    `net`, gives them."""
    torch.manual_seed(0)
    half = images // 2
    images, labels = torch.randn(2 * half, 1, 12, 12), torch.randint(0, 10, (2 * half,))
    model = net().eval()
    workload = Workload.from_module(model, [(images[:half], labels[:half])], [(images[half:], labels[half:])])
    env = ChannelPruneEnv(workload=workload, target_ratio=ratio, device="cpu", calibration_images=half, **env_kwargs)
    info = play(env, uniform_policy(env.budget))
    assert info["macs_ratio"] <= ratio
    magnitude = ChannelPruneEnv(workload=workload, target_ratio=ratio, device="cpu", reconstruction="magnitude",
                                **env_kwargs)
    play(magnitude, uniform_policy(magnitude.budget))
    with torch.no_grad():
        error = {name: (e.pruned_network(images) - model(images)).norm() for name, e in
                 (("refit", env), ("magnitude", magnitude))}
        assert error["refit"] < 0.5 * error["magnitude"]
        export_slim(env, out, info)
        assert torch.allclose(load_slim(out, model=net())(images), env.pruned_network(images), atol=1e-5)
    return env, info


def test_a_channels_last_mlp_is_a_unit_refit_by_reconstruction_and_exported(tmp_path):
    """ConvNeXt's and ViT's MLPs: Linear -> GELU -> Linear on (N, ..., C) tensors; the hidden width is a unit."""
    env, _ = prune_refit_and_export(ChannelsLastNet, 0.6, tmp_path)
    hidden = next(u for u in env.units if u.producer == "mlp1")
    assert (hidden.channels, hidden.dim, [c.module for c in hidden.consumers]) == (32, -1, ["mlp2"])
    assert env.graph.frozen["mlp2"].startswith("permute at node permute_1")
    assert env.pruned_network.mlp1.out_features == env.pruned_network.mlp2.in_features < 32


def test_a_squeeze_excitation_gate_joins_its_channels_unit(tmp_path):
    """The gate's producer (expand) loses the channels the gated layer (conv1) loses; the squeeze conv, a
    consumer of that unit that feeds the gate, is refit on the outputs the gate kept."""
    env, _ = prune_refit_and_export(HardGatedNet, 0.6, tmp_path)
    gated = env.units[0]
    assert gated.producers == ("conv1", "expand") and [c.module for c in gated.consumers] == ["squeeze", "conv2"]
    net = env.pruned_network
    assert net.conv1.out_channels == net.expand.out_channels == net.squeeze.in_channels == net.conv2.in_channels < 16


def test_a_concatenation_prunes_the_same_share_of_each_input(tmp_path):
    env, info = prune_refit_and_export(ConcatNet, 0.6, tmp_path)
    unit = next(u for u in env.units if u.producers == ("left", "right"))
    kept = info["kept_channels_per_unit"][unit.index]
    net = env.pruned_network
    assert kept % 3 == 0 and kept < 12 and net.after.in_channels == kept
    assert net.left.out_channels == net.bn.num_features == net.left_only.in_channels == 2 * kept // 3
    assert net.right.out_channels == kept // 3


def test_a_chunked_unit_keeps_as_many_channels_in_each_piece(tmp_path):
    env, info = prune_refit_and_export(ChunkedNet, 0.6, tmp_path)
    unit = env.units[0]
    assert (unit.producer, unit.atoms, [c.module for c in unit.consumers]) == ("conv1", (0, 8, 16),
                                                                              ["conv2", "conv3", "conv4"])
    kept = info["kept_channels_per_unit"][0]
    net = env.pruned_network
    assert kept < 16 and net.conv3.in_channels == net.conv4.in_channels == kept // 2


def test_option_a_shortcuts_pad_the_pruned_stream_by_the_same_share(tmp_path):
    """ResNet-8's stream, 16 channels in the middle of 32 in the middle of 64, is one unit; its consumers,
    spread over the network, are refit in graph order, each on what the blocks before it compute once they
    are refit (it takes more calibration rows than the 64 * 9 columns of stage 3's conv1)."""
    env, info = prune_refit_and_export(TinyCifarResNet, 0.6, tmp_path, images=400, residual_streams=True)
    stream = env.units[0]
    assert stream.atoms == (0, 16, 24, 40, 48, 64) and stream.granularity == 8
    kept = info["kept_channels_per_unit"][0]
    net = env.pruned_network
    assert kept < 64 and (net.conv1.out_channels, net.get_submodule("layer2.0.conv2").out_channels,
                          net.fc.in_features) == (kept // 4, kept // 2, kept)


class GroupedNet(nn.Module):
    """A ResNeXt / RegNet bottleneck: 1x1 conv, a 3x3 conv in 4 groups of 4 channels, 1x1 conv."""

    def __init__(self):
        super().__init__()
        self.reduce, self.bn1 = nn.Conv2d(1, 16, 1), nn.BatchNorm2d(16)
        self.grouped, self.bn2 = nn.Conv2d(16, 16, 3, padding=1, groups=4), nn.BatchNorm2d(16)
        self.expand, self.fc = nn.Conv2d(16, 8, 1), nn.Linear(8, 10)

    def forward(self, x):
        y = torch.relu(self.bn2(self.grouped(torch.relu(self.bn1(self.reduce(x))))))
        return self.fc(self.expand(y).mean((2, 3)))


def test_a_grouped_conv_follows_its_unit_in_whole_groups(tmp_path):
    env, info = prune_refit_and_export(GroupedNet, 0.5, tmp_path)
    unit = env.units[0]
    assert (unit.producer, unit.members, unit.granularity) == ("reduce", ("bn1", "grouped", "bn2"), 4)
    kept = info["kept_channels_per_unit"][0]
    assert kept % 4 == 0 and kept < 16 and env.pruned_network.grouped.groups == kept // 4
    assert env.budget.max_keep(0, []) % 4 == 0 and env.budget.min_channels[0] == 4


class Branchy(nn.Module):
    """Data-dependent control flow, which torch.fx cannot trace."""

    def forward(self, x):
        return x if x.sum() > 0 else -x


class WithUntraceablePart(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2, self.branchy = nn.Conv2d(1, 16, 3), nn.Conv2d(16, 8, 3), Branchy()
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        return self.fc(self.branchy(self.conv2(torch.relu(self.conv1(x)))).mean((2, 3)))


def test_an_untraceable_module_is_named_and_kept_whole_as_a_leaf(tmp_path):
    torch.manual_seed(0)
    images, labels = torch.randn(32, 1, 12, 12), torch.randint(0, 10, (32,))
    workload = Workload.from_module(WithUntraceablePart().eval(), [(images[:16], labels[:16])],
                                    [(images[16:], labels[16:])])
    with pytest.raises(PruneGymError, match=r"cannot trace module 'branchy' \(Branchy\) with torch.fx .*; pass "
                                            r"leaf_modules=\['branchy'\] to keep it as one call"):
        ChannelPruneEnv(workload=workload, target_ratio=0.6, device="cpu")
    with pytest.raises(PruneGymError, match="leaf_modules names no module of WithUntraceablePart: brnachy"):
        ChannelPruneEnv(workload=workload, target_ratio=0.6, device="cpu", leaf_modules=["brnachy"])
    env = ChannelPruneEnv(workload=workload, target_ratio=0.6, device="cpu", leaf_modules=["branchy"])
    assert [u.producer for u in env.units] == ["conv1"] and env.graph.frozen["conv2"] == "Branchy at branchy"
    info = play(env, uniform_policy(env.budget))
    export_slim(env, tmp_path, info)
    with torch.no_grad():
        assert torch.equal(load_slim(tmp_path, model=WithUntraceablePart())(images), env.pruned_network(images))


class ResidualNet(nn.Module):
    """A stem and two residual blocks on one stream, then a head: the stream is what the blocks add into."""

    def __init__(self):
        super().__init__()
        self.stem, self.head, self.fc = (nn.Conv2d(1, 16, 3, padding=1), nn.Conv2d(16, 16, 3, padding=1),
                                         nn.Linear(16, 10))
        self.a1, self.b1 = nn.Conv2d(16, 16, 3, padding=1), nn.Conv2d(16, 16, 3, padding=1)
        self.a2, self.b2, self.bn2 = (nn.Conv2d(16, 16, 3, padding=1), nn.Conv2d(16, 16, 3, padding=1),
                                      nn.BatchNorm2d(16))

    def forward(self, x):
        x = torch.relu(self.stem(x))
        x = torch.relu(x + self.b1(torch.relu(self.a1(x))))
        x = torch.relu(x + self.bn2(self.b2(torch.relu(self.a2(x)))))
        return self.fc(torch.relu(self.head(x)).mean((2, 3)))


def test_residual_streams_become_units_on_request(tmp_path):
    """Off (the default), the stream stays whole; on, it is one unit of every layer that writes into it, and
    the blocks' last convs, which it prunes first, are refit later on the channels it kept, their shortcut's
    drift included."""
    torch.manual_seed(0)
    images, labels = torch.randn(48, 1, 12, 12), torch.randint(0, 10, (48,))
    workload = Workload.from_module(ResidualNet().eval(), [(images[:24], labels[:24])], [(images[24:], labels[24:])])
    whole = ChannelPruneEnv(workload=workload, target_ratio=0.6, device="cpu")
    assert ([u.producer for u in whole.units] == ["a1", "a2", "head"]
            and whole.graph.frozen["stem"] == "residual addition")
    env, info = prune_refit_and_export(ResidualNet, 0.6, tmp_path, residual_streams=True)
    stream = env.units[0]
    assert stream.producers == ("stem", "b1", "b2") and stream.members == ("bn2",)
    assert [c.module for c in stream.consumers] == ["a1", "a2", "head"]
    kept = info["kept_channels_per_unit"][0]
    assert kept < 16 and env.pruned_network.stem.out_channels == kept
    assert (env.pruned_network.b1.out_channels == env.pruned_network.b2.out_channels
            == env.pruned_network.head.in_channels)


def test_an_async_vector_env_with_the_default_start_method_plays_an_episode(tiny_checkpoint, fashion_root):
    """Gymnasium's async vector env forks its workers (on Linux) after building an env in the parent: each
    worker's torch must not wait for the parent's thread pool (it hung so). Run apart, so a hang fails here."""
    script = f"""
import gymnasium as gym, numpy as np, torch, prune_gym
torch.set_num_threads(2)  # the parent's pool, which a fork does not carry over
envs = gym.make_vec(prune_gym.ENV_ID, num_envs=2, vectorization_mode="async", target_ratio=0.5, device="cpu",
                    checkpoint={str(tiny_checkpoint)!r}, data_root={str(fashion_root)!r}, calibration_images=100)
envs.reset(seed=0)
done = np.zeros(2, bool)
while not done.all():
    _, reward, terminated, _, _ = envs.step(np.full((2, 1), 0.5, np.float32))
    done |= terminated
envs.close()
print("rewards", *reward)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    rewards = [float(r) for r in result.stdout.split("rewards")[1].split()]
    assert len(rewards) == 2 and rewards[0] == rewards[1] > 0  # the same policy, the same pruned network
