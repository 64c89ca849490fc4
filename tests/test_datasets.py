"""Data sets read through the real loaders from files in the real formats, split by a seed."""

from __future__ import annotations

import hashlib
import shutil

import pytest
import torch

from prune_gym.datasets import load_splits, random_crop_flip
from prune_gym.errors import DataNotFoundError, PruneGymError, UnknownNameError


def image_hashes(split) -> set[str]:
    return {hashlib.sha1(img.numpy().tobytes()).hexdigest() for img in split.images}


def test_fashion_mnist_splits_are_disjoint_held_out_and_seeded(fashion_root):
    splits = load_splits("fashion-mnist", fashion_root, seed=3, calibration_size=100, reward_size=200)
    assert (len(splits.train), len(splits.calibration), len(splits.reward), len(splits.test)) == (900, 100, 200, 300)
    train, cal, reward = image_hashes(splits.train), image_hashes(splits.calibration), image_hashes(splits.reward)
    assert not (train & cal) and not (train & reward) and not (cal & reward)

    again = load_splits("fashion-mnist", fashion_root, seed=3, calibration_size=100, reward_size=200)
    assert torch.equal(again.reward.images, splits.reward.images)
    other = load_splits("fashion-mnist", fashion_root, seed=4, calibration_size=100, reward_size=200)
    assert not torch.equal(other.reward.images, splits.reward.images)


def test_batches_are_normalised_and_cover_the_split(fashion_root):
    splits = load_splits("fashion-mnist", fashion_root, calibration_size=100, reward_size=200)
    x, y = splits.reward.tensors(batch_size=64)
    assert x.shape == (200, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert abs(x.mean().item()) < 0.5 and 0.5 < x.std().item() < 1.5
    assert torch.equal(y, splits.reward.labels)


def test_torchvision_layout_is_accepted(fashion_root, tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    shutil.copytree(fashion_root, raw)
    splits = load_splits("fashion-mnist", tmp_path, calibration_size=100, reward_size=100)
    assert len(splits.test) == 300


def test_cifar10_pickle_batches(cifar_root):
    splits = load_splits("cifar10", cifar_root, calibration_size=30, reward_size=30)
    assert splits.info.in_channels == 3 and splits.info.image_size == 32
    assert len(splits.train) == 300 - 60 and len(splits.test) == 60
    x, _ = next(splits.train.batches(16, shuffle=True, augment=True, generator=torch.Generator().manual_seed(0)))
    assert x.shape == (16, 3, 32, 32)


def test_imagefolder_root(imagefolder_root):
    splits = load_splits("imagefolder", imagefolder_root, calibration_size=5, reward_size=5)
    assert splits.info.num_classes == 3 and len(splits.train) == 20 and len(splits.test) == 9
    x, y = splits.reward.tensors(batch_size=4)
    assert x.shape == (5, 3, 224, 224) and y.shape == (5,)


def test_random_crop_flip_moves_pixels_without_inventing_them():
    x = torch.arange(2 * 1 * 8 * 8, dtype=torch.float32).view(2, 1, 8, 8) + 1
    out = random_crop_flip(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    for original, moved in zip(x, out):
        kept = moved[moved != 0]  # zeros are the padding
        assert set(kept.tolist()) <= set(original.flatten().tolist())


def test_missing_data_says_where_it_looked(tmp_path):
    with pytest.raises(DataNotFoundError, match=str(tmp_path)):
        load_splits("fashion-mnist", tmp_path)
    with pytest.raises(DataNotFoundError, match="cifar-10-batches-py.*data_batch_1"):
        load_splits("cifar10", tmp_path)
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_splits("cifar10", tmp_path / "nowhere")


def test_bad_names_and_sizes(fashion_root):
    with pytest.raises(UnknownNameError, match="fashion-mnist, cifar10, imagefolder"):
        load_splits("mnist")
    with pytest.raises(PruneGymError, match="leave training images"):
        load_splits("fashion-mnist", fashion_root, calibration_size=600, reward_size=600)


def test_truncated_idx_file_is_named(fashion_root, tmp_path):
    shutil.copytree(fashion_root, tmp_path, dirs_exist_ok=True)
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    import gzip
    data = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(data[:-10]))
    with pytest.raises(PruneGymError, match="t10k-labels.*truncated"):
        load_splits("fashion-mnist", tmp_path, calibration_size=10, reward_size=10)
