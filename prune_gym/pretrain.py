"""Pretraining a zoo model on a data set, cached so that a second call reuses the checkpoint.

The recipe is plain SGD with Nesterov momentum and a one-cycle learning rate, with random
crops and flips: ResNet-20 reaches about 92% on Fashion-MNIST in 5 epochs (about 6 minutes) on two CPU cores.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from prune_gym import __version__
from prune_gym.checkpoints import read_checkpoint, save_checkpoint
from prune_gym.datasets import DataSplits, load_splits
from prune_gym.devices import resolve_device
from prune_gym.errors import CheckpointError
from prune_gym.evaluation import accuracy
from prune_gym.models import build_model
from prune_gym.paths import home_dir


@dataclass(frozen=True)
class Recipe:
    epochs: int = 5
    batch_size: int = 128
    max_lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    seed: int = 0


@dataclass(frozen=True)
class SplitSpec:
    """How the training images were split; the env must use the same to keep its splits held out."""

    seed: int = 0
    calibration_size: int = 2000
    reward_size: int = 2000


def checkpoint_splits(metadata: dict[str, Any], dataset: str, data_root: str | Path | None = None) -> DataSplits:
    """`dataset` split as the checkpoint with `metadata` was trained on it (the default split where it does not
    say), so that its calibration, reward and test images stay ones its training never saw."""
    split = SplitSpec(**metadata.get("split", {}))
    return load_splits(dataset, data_root, split.seed, split.calibration_size, split.reward_size)


@dataclass
class PretrainResult:
    path: Path
    metadata: dict[str, Any]
    reused: bool


def checkpoint_path(model: str, dataset: str, recipe: Recipe = Recipe(), split: SplitSpec = SplitSpec()) -> Path:
    """Where the checkpoint of this (model, data set, recipe, split) is cached."""
    key = json.dumps({"recipe": asdict(recipe), "split": asdict(split)}, sort_keys=True)
    tag = hashlib.sha256(key.encode()).hexdigest()[:8]
    return home_dir() / "checkpoints" / f"{model}_{dataset}_{tag}.pt"


def shipped_checkpoint(model: str, dataset: str) -> Path | None:
    """The trained weights of `model` on `dataset` that ship with prune-gym (package data of
    `prune_gym.benchmarks`: the networks the committed benchmarks and the history library pruned), if any."""
    path = Path(str(resources.files("prune_gym.benchmarks").joinpath("checkpoints", f"{model}_{dataset}.pt")))
    return path if path.is_file() else None


def default_checkpoint(model: str, dataset: str) -> Path:
    """The weights a search or fine-tune of `model` on `dataset` takes unless given some: those `prune-gym
    pretrain` cached, else those that ship with prune-gym; a CheckpointError when there are neither."""
    cached = checkpoint_path(model, dataset)
    if cached.exists():
        return cached
    shipped = shipped_checkpoint(model, dataset)
    if shipped is None:
        raise CheckpointError(f"no pretrained {model} for {dataset} in {cached.parent}, and none ships with "
                              f"prune-gym; run `prune-gym pretrain --model {model} --dataset {dataset}` or pass "
                              f"checkpoint=PATH")
    return shipped


def train(model: nn.Module, splits: DataSplits, recipe: Recipe, device: torch.device, progress: bool = True) -> None:
    """Train in place with the recipe; shows a bar per epoch."""
    generator = torch.Generator().manual_seed(recipe.seed)
    steps_per_epoch = -(-len(splits.train) // recipe.batch_size)
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.max_lr, momentum=recipe.momentum,
                                weight_decay=recipe.weight_decay, nesterov=True)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, recipe.max_lr, epochs=recipe.epochs,
                                                   steps_per_epoch=steps_per_epoch)
    loss_fn = nn.CrossEntropyLoss()
    model.to(device).train()
    for epoch in range(recipe.epochs):
        bar = tqdm(splits.train.batches(recipe.batch_size, device, shuffle=True, augment=True, generator=generator),
                   total=steps_per_epoch, desc=f"epoch {epoch + 1}/{recipe.epochs}", disable=not progress,
                   leave=False)
        for x, y in bar:
            loss = loss_fn(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)


def pretrain(model_name: str, dataset: str, data_root: str | Path | None = None, recipe: Recipe = Recipe(),
             split: SplitSpec = SplitSpec(), device: str = "auto", force: bool = False,
             progress: bool = True) -> PretrainResult:
    """Train `model_name` on `dataset` unless a checkpoint for the same recipe is cached."""
    path = checkpoint_path(model_name, dataset, recipe, split)
    if path.exists() and not force:
        _, metadata = read_checkpoint(path)
        return PretrainResult(path, metadata, reused=True)
    torch_device = resolve_device(device)
    splits = load_splits(dataset, data_root, **asdict(split))
    info = splits.info
    torch.manual_seed(recipe.seed)
    model = build_model(model_name, info.in_channels, info.num_classes, info.image_size)
    start = time.perf_counter()
    train(model, splits, recipe, torch_device, progress)
    seconds = time.perf_counter() - start
    metadata = {
        "format": "prune-gym-checkpoint/1",
        "model": model_name,
        "dataset": dataset,
        "input": {"in_channels": info.in_channels, "num_classes": info.num_classes, "image_size": info.image_size},
        "split": asdict(split),
        "recipe": asdict(recipe),
        "test_accuracy": accuracy(model, splits.test.batches(500, torch_device)),
        "reward_accuracy": accuracy(model, splits.reward.batches(500, torch_device)),
        "train_seconds": round(seconds, 1),
        "device": str(torch_device),
        "prune_gym_version": __version__,
        "torch_version": str(torch.__version__),
    }
    return PretrainResult(path, save_checkpoint(path, model, metadata), reused=False)
