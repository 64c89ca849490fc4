"""A workload: the trained network and the images an environment prunes and scores it with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import torch
from torch import nn

from prune_gym.checkpoints import load_weights, read_checkpoint, state_digest
from prune_gym.datasets import ImageSplit, check_dataset_name
from prune_gym.models import build_model, check_model_name
from prune_gym.pretrain import checkpoint_splits, default_checkpoint

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


@dataclass
class Workload:
    model_name: str
    dataset: str
    model: nn.Module
    input_shape: tuple[int, ...]  # (C, H, W)
    calibration: torch.Tensor  # images for reconstruction (labels are not needed)
    reward: tuple[torch.Tensor, torch.Tensor]  # images and labels that score a pruned network
    digest: str  # of the trained weights
    test: ImageSplit | None = None
    build_args: dict | None = None  # how to rebuild the model from the zoo, when it comes from there

    @classmethod
    def from_zoo(cls, model: str, dataset: str, checkpoint: str | Path | None = None,
                 data_root: str | Path | None = None, calibration_images: int = 500,
                 reward_images: int | None = None) -> Workload:
        """A zoo model with its given checkpoint (else `default_checkpoint`), and the splits it was trained with."""
        check_model_name(model)  # before the cache is searched: "no pretrained nope" would hide the typo
        check_dataset_name(dataset)
        path = Path(checkpoint) if checkpoint is not None else default_checkpoint(model, dataset)
        _, meta = read_checkpoint(path)
        splits = checkpoint_splits(meta, dataset, data_root)
        info = splits.info
        net = build_model(model, info.in_channels, info.num_classes, info.image_size)
        load_weights(net, path)
        calibration, _ = splits.calibration.tensors(limit=calibration_images)
        reward = splits.reward.tensors(limit=reward_images)
        return cls(model, dataset, net, (info.in_channels, info.image_size, info.image_size),
                   calibration, reward, meta.get("digest") or state_digest(net.state_dict()),
                   splits.test, {"in_channels": info.in_channels, "num_classes": info.num_classes,
                                 "image_size": info.image_size})

    @classmethod
    def from_module(cls, model: nn.Module, calibration: Batches, reward: Batches, name: str = "custom",
                    dataset: str = "custom", calibration_images: int = 500) -> Workload:
        """A user's own trained network, with data loaders (or any iterables) of (images, labels)."""
        images, count = [], 0
        for x, _ in calibration:  # read no more of the loader than needed
            images.append(x)
            count += len(x)
            if count >= calibration_images:
                break
        cal = torch.cat(images)[:calibration_images]
        xs, ys = zip(*reward)
        return cls(name, dataset, model, tuple(cal.shape[1:]), cal, (torch.cat(xs), torch.cat(ys)),
                   state_digest(model.state_dict()))
