"""Exported slim models reproduce the episode; users' own modules and loaders work end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from prune_gym.env import ChannelPruneEnv
from prune_gym.errors import PruneGymError
from prune_gym.evaluation import accuracy
from prune_gym.export import export_slim, load_slim
from prune_gym.macs import count_macs
from prune_gym.policies import play, uniform_policy
from prune_gym.workload import Workload


def test_exported_model_reproduces_the_episode(make_env, tmp_path):
    env = make_env(target_ratio=0.3)
    info = play(env, uniform_policy(env.unwrapped.budget))
    test_split = env.unwrapped.workload.test
    episode_test_accuracy = accuracy(env.unwrapped.pruned_network, test_split.batches(100))
    export_slim(env, tmp_path, info)

    slim = load_slim(tmp_path)
    assert type(slim).__name__ == "CifarResNet" and not isinstance(slim, torch.fx.GraphModule)
    x, y = env.unwrapped.workload.reward
    assert accuracy(slim, [(x, y)]) == info["accuracy"]
    assert abs(accuracy(slim, test_split.batches(100)) - episode_test_accuracy) <= 0.001
    assert count_macs(slim, (1, 28, 28)) == info["macs"]
    spec = json.loads((tmp_path / "spec.json").read_text())
    assert [u["kept"] for u in spec["units"]] == info["kept_channels_per_unit"]
    assert spec["macs_ratio"] == info["macs_ratio"] <= 0.3


def test_bad_exports_are_named(tmp_path, make_env):
    with pytest.raises(PruneGymError, match="no spec.json"):
        load_slim(tmp_path)
    (tmp_path / "spec.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(PruneGymError, match="not a prune-gym slim-model spec"):
        load_slim(tmp_path)
    env = make_env()
    env.reset()
    env.step(np.array([0.5], dtype=np.float32))
    with pytest.raises(PruneGymError, match="finished episode"):
        export_slim(env, tmp_path / "unfinished")


class SmallNet(nn.Module):
    """A user's plain CNN: conv-bn-relu blocks, a flatten and a linear head."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 12, 3, padding=1), nn.BatchNorm2d(12), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(12, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2))
        self.head = nn.Linear(16 * 7 * 7, 10)

    def forward(self, x):
        return self.head(torch.flatten(self.body(x), 1))


def test_users_module_and_data_loaders(fashion_root, tmp_path):
    from prune_gym.datasets import load_splits

    splits = load_splits("fashion-mnist", fashion_root, calibration_size=100, reward_size=200)
    torch.manual_seed(0)
    model = SmallNet()
    optimizer = torch.optim.Adam(model.parameters(), 3e-3)
    for x, y in splits.train.batches(64, shuffle=True, generator=torch.Generator().manual_seed(0)):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    calibration = DataLoader(TensorDataset(*splits.calibration.tensors()), batch_size=32)
    reward = DataLoader(TensorDataset(*splits.reward.tensors()), batch_size=32)
    workload = Workload.from_module(model, calibration, reward, name="smallnet")

    env = ChannelPruneEnv(workload=workload, target_ratio=0.5, device="cpu")
    assert [u.producer for u in env.units] == ["body.0", "body.4"]
    assert env.units[1].consumers[0].block == 49  # the linear head reads 7x7 columns per channel
    info = play(env, uniform_policy(env.budget))
    assert info["macs_ratio"] <= 0.5 and info["accuracy"] > 0.3
    export_slim(env, tmp_path, info)
    slim = load_slim(tmp_path, model=SmallNet())
    assert accuracy(slim, reward) == info["accuracy"]


class AuxNet(SmallNet):
    """SmallNet with an auxiliary head that only training uses (as GoogLeNet's and Inception's are)."""

    def __init__(self):
        super().__init__()
        self.aux = nn.Linear(16 * 7 * 7, 10)

    def forward(self, x):
        features = torch.flatten(self.body(x), 1)
        return (self.head(features), self.aux(features)) if self.training else self.head(features)


def test_a_training_only_head_is_exported_as_it_was_and_a_fresh_instance_loads(tmp_path):
    torch.manual_seed(0)
    model = AuxNet().eval()
    images, labels = torch.randn(64, 1, 28, 28), torch.randint(0, 10, (64,))
    workload = Workload.from_module(model, [(images[:32], labels[:32])], [(images[32:], labels[32:])], name="aux")
    env = ChannelPruneEnv(workload=workload, target_ratio=0.5, device="cpu", calibration_images=32)
    export_slim(env, tmp_path, play(env, uniform_policy(env.budget)))
    slim = load_slim(tmp_path, model=AuxNet())
    with torch.no_grad():
        assert torch.equal(slim(images), env.pruned_network(images))
    assert torch.equal(slim.aux.weight, model.aux.weight)  # not in the traced network: kept, unpruned


def test_export_command(fashion_root, tiny_checkpoint, tmp_path):
    out = tmp_path / "slim"
    result = subprocess.run(
        [str(Path(sys.executable).with_name("prune-gym")), "export", "--ratio", "0.4", "--policy", "uniform",
         "--checkpoint", str(tiny_checkpoint), "--data-root", str(fashion_root), "--device", "cpu",
         "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "layer3.2.conv1" in result.stdout and "MACs ratio" in result.stdout
    spec = json.loads((out / "spec.json").read_text())
    assert spec["macs_ratio"] <= 0.4 and (out / "model.pt").is_file()
    assert accuracy(load_slim(out), [Workload.from_zoo("resnet20", "fashion-mnist", tiny_checkpoint,
                                                       fashion_root).reward]) == spec["accuracy"]


class PlainTensorScale(SmallNet):
    """A tensor attribute that is no buffer: torch.fx keeps it as a `_tensor_constant` of its own."""

    def __init__(self):
        super().__init__()
        self.scale = torch.tensor(0.5)

    def forward(self, x):
        return super().forward(x) * self.scale


@pytest.mark.parametrize("build", [PlainTensorScale,
                                   lambda: __import__("torchvision").models.mnasnet0_5(num_classes=10)],
                         ids=["fx-constant", "mnasnet-versioned-state"])
def test_the_export_holds_the_models_own_state_and_loads_into_a_fresh_instance(build, tmp_path):
    """Neither fx's tensor constants nor a state dict without module versions (which MNASNet's loader reads)."""
    torch.manual_seed(0)
    channels = 1 if build is PlainTensorScale else 3
    images, labels = torch.randn(16, channels, 28, 28), torch.randint(0, 10, (16,))
    workload = Workload.from_module(build().eval(), [(images[:8], labels[:8])], [(images[8:], labels[8:])])
    env = ChannelPruneEnv(workload=workload, target_ratio=0.5, device="cpu", reconstruction="magnitude")
    export_slim(env, tmp_path, play(env, uniform_policy(env.budget)))
    with torch.no_grad():
        assert torch.equal(load_slim(tmp_path, model=build())(images), env.pruned_network(images))
