"""The zoo: reference sizes, MACs that agree with torch's own counter, geometry adaptation."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from prune_gym.errors import UnknownNameError
from prune_gym.macs import count_macs, count_params
from prune_gym.models import CANONICAL_INPUT, build_model, model_names

# Published counts, (conv + linear MACs, params or None) at each model's canonical input.
REFERENCE = {
    "resnet20": (40.55e6, 269_722),
    "resnet56": (125.49e6, 853_018),
    "resnet18": (1.814e9, None),
    "mobilenet_v1": (568.7e6, None),
    "mobilenet_v2": (300.8e6, None),
}
GEOMETRIES = [(1, 10, 28), (3, 10, 32), (3, 1000, 224)]


def torch_macs(model: nn.Module, shape: tuple[int, ...]) -> float:
    model.eval()
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, *shape))
    return counter.get_total_flops() / 2  # torch counts a multiply-accumulate as two FLOPs


@pytest.mark.parametrize("name", REFERENCE)
def test_canonical_sizes_match_the_references(name):
    channels, classes, size = CANONICAL_INPUT[name]
    model = build_model(name, channels, classes, size)
    macs, params = REFERENCE[name]
    assert count_macs(model, (channels, size, size)) == pytest.approx(macs, rel=0.005)
    if params is not None:
        assert count_params(model) == params


@pytest.mark.parametrize("name", model_names())
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=["28x28x1", "32x32x3", "224x224x3"])
def test_analytic_macs_equal_torch_flop_counter_and_geometry_adapts(name, geometry):
    channels, classes, size = geometry
    if size == 224 and name in ("resnet20", "resnet56"):
        pytest.skip("CIFAR ResNets are not meant for 224x224 images")
    model = build_model(name, channels, classes, size)
    assert count_macs(model, (channels, size, size)) == torch_macs(model, (channels, size, size))
    with torch.no_grad():
        assert model.eval()(torch.zeros(2, channels, size, size)).shape == (2, classes)


def test_small_inputs_keep_a_spatial_map_before_the_last_stage():
    """The ImageNet stem would reduce 28x28 to 1x1; the small-input stem keeps resolution."""
    small = build_model("resnet18", 1, 10, 28)
    large = build_model("resnet18", 1, 10, 224)
    assert count_macs(small, (1, 28, 28)) > 4 * count_macs(large, (1, 28, 28))


def test_user_module_is_counted_too():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 8 * 8, 5))
    assert count_macs(model, (3, 8, 8)) == 3 * 8 * 9 * 64 + 512 * 5 == torch_macs(model, (3, 8, 8))


def test_unknown_model_lists_the_zoo():
    with pytest.raises(UnknownNameError, match="resnet20.*mobilenet_v2"):
        build_model("vgg16")
