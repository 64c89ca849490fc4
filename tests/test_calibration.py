"""The lazy runner behind an episode's calibration pass: values computed on demand, forgotten once consumed."""

from __future__ import annotations

import torch
from torch import fx, nn

from prune_gym.calibration import LazyGraphRunner


class Branching(nn.Module):
    """A conv whose output two branches read, then add."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        a = self.conv(x)
        return torch.relu(a) + torch.sigmoid(a)


def test_a_value_stays_until_its_last_user_has_run_and_is_recomputed_when_asked_again():
    torch.manual_seed(0)
    net, x = Branching(), torch.randn(2, 3, 8, 8)
    runner = LazyGraphRunner(fx.symbolic_trace(net), x)
    memoised = lambda: {node.name for node in runner.env}

    runner.value("relu")
    assert memoised() == {"x", "conv", "relu"}  # sigmoid has yet to read the conv's output
    total = runner.value("add")
    assert memoised() == {"x", "add"}  # the input stays: every value is computed from it
    assert torch.allclose(total, net(x))

    assert torch.allclose(runner.value("conv"), net.conv(x))  # forgotten, so computed again
