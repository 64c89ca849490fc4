"""BatchNorm recalibration: a pruned network's normalisation statistics measured again.

Pruning changes what every later layer sees, while the BatchNorm layers still normalise with
the unpruned network's running mean and variance. Re-estimating those statistics from the
pruned network's own activations on calibration images (EagleEye, Li et al. 2020) repairs
that shift without training a weight, in one forward pass: it serves magnitude pruning, which
leaves the shift in place. The env's refit is fitted under the original statistics instead
(and absorbs a residual shortcut's drift), so recalibrating after it undoes part of the fit.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def batchnorm_layers(network: nn.Module) -> list[tuple[str, nn.modules.batchnorm._BatchNorm]]:
    """The network's BatchNorm layers with their names, in module order."""
    return [(name, m) for name, m in network.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


@torch.no_grad()
def recalibrate_batchnorm(network: nn.Module, images: Iterable[torch.Tensor]) -> int:
    """Replace every BatchNorm layer's running statistics with their average over `images` (batches), as the
    network computes them now; the network is left in eval mode. Returns how many layers were recalibrated.

    Each layer's statistics are the plain mean over the batches (momentum None), so the result does not
    depend on the order of the batches, and every other parameter and buffer is left as it was.
    """
    batches = list(images)
    if not batches:
        raise ValueError("BatchNorm recalibration needs at least one batch of images")
    layers = [m for _, m in batchnorm_layers(network) if m.track_running_stats]
    if not layers:
        return 0
    momenta = [m.momentum for m in layers]
    network.eval()
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average over the batches
        m.train()
    try:
        for x in batches:
            network(x)
    finally:
        for m, momentum in zip(layers, momenta):
            m.momentum = momentum
            m.eval()
    return len(layers)
