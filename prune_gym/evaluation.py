"""Top-1 accuracy, the quantity every trial is scored by."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn


@torch.no_grad()
def accuracy(model: nn.Module, batches: Iterable[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Fraction of correctly classified images, with the model in eval mode."""
    was_training = model.training
    model.eval()
    correct = total = 0
    for x, y in batches:
        correct += (model(x).argmax(1) == y).sum().item()
        total += len(y)
    model.train(was_training)
    if total == 0:
        raise ValueError("accuracy of an empty split")
    return correct / total
