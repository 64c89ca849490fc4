"""Pretraining caches a described checkpoint; users' checkpoints load, wrong ones are refused."""

from __future__ import annotations

import pytest
import torch

from prune_gym.checkpoints import load_weights, read_checkpoint, state_digest
from prune_gym.errors import CheckpointError
from prune_gym.models import build_model
from prune_gym.pretrain import Recipe, SplitSpec, checkpoint_path, pretrain

TINY = Recipe(epochs=2, batch_size=64, max_lr=0.05)
SPLIT = SplitSpec(calibration_size=100, reward_size=200)


@pytest.fixture(scope="module")
def pretrained(fashion_root, tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PRUNE_GYM_HOME", str(home))
        result = pretrain("resnet20", "fashion-mnist", fashion_root, TINY, SPLIT, device="cpu", progress=False)
    return home, result


def test_checkpoint_is_cached_with_its_metadata(pretrained):
    home, result = pretrained
    assert not result.reused and result.path.is_relative_to(home)
    meta = result.metadata
    assert meta["model"] == "resnet20" and meta["dataset"] == "fashion-mnist"
    assert meta["input"] == {"in_channels": 1, "num_classes": 10, "image_size": 28}
    assert meta["recipe"]["epochs"] == 2 and meta["split"]["reward_size"] == 200
    assert 0.2 < meta["test_accuracy"] <= 1  # two short epochs already beat chance (0.1)
    state, stored = read_checkpoint(result.path)
    assert stored == meta and state_digest(state) == meta["digest"]


def test_second_call_reuses_the_checkpoint(pretrained, fashion_root, monkeypatch):
    home, first = pretrained
    monkeypatch.setenv("PRUNE_GYM_HOME", str(home))
    mtime = first.path.stat().st_mtime_ns
    again = pretrain("resnet20", "fashion-mnist", fashion_root, TINY, SPLIT, device="cpu", progress=False)
    assert again.reused and again.path == first.path and again.path.stat().st_mtime_ns == mtime
    assert again.metadata["digest"] == first.metadata["digest"]
    assert checkpoint_path("resnet20", "fashion-mnist", Recipe(epochs=3), SPLIT) != first.path


@pytest.mark.parametrize("wrap", ["plain", "state_dict", "module_prefix"])
def test_users_checkpoints_load(pretrained, tmp_path, wrap):
    _, result = pretrained
    state, _ = read_checkpoint(result.path)
    obj = {"plain": state, "state_dict": {"state_dict": state, "epoch": 3},
           "module_prefix": {f"module.{k}": v for k, v in state.items()}}[wrap]
    torch.save(obj, tmp_path / "user.pt")
    model = build_model("resnet20", 1, 10, 28)
    load_weights(model, tmp_path / "user.pt")
    assert state_digest(model.state_dict()) == result.metadata["digest"]


def test_checkpoint_of_another_architecture_is_refused_with_the_keys(pretrained):
    _, result = pretrained
    with pytest.raises(CheckpointError, match=r"missing keys: layer1\.3.*"):
        load_weights(build_model("resnet56", 1, 10, 28), result.path)
    with pytest.raises(CheckpointError, match=r"shape mismatch.*conv1\.weight \(16, 1, 3, 3\) vs \(16, 3, 3, 3\)"):
        load_weights(build_model("resnet20", 3, 10, 32), result.path)


def test_corrupt_and_missing_checkpoints_are_named(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"definitely not a torch file")
    with pytest.raises(CheckpointError, match="bad.pt is corrupt"):
        read_checkpoint(bad)
    with pytest.raises(CheckpointError, match="nothing.pt does not exist"):
        read_checkpoint(tmp_path / "nothing.pt")
    torch.save({"epoch": 3}, tmp_path / "empty.pt")
    with pytest.raises(CheckpointError, match="holds no state dict"):
        read_checkpoint(tmp_path / "empty.pt")
