"""Layer kinds: a user's own, registered from outside the package, through a real episode and export; bad
registrations refused; modules no kind handles keep their channels whole, as they always did."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from prune_gym import layers
from prune_gym.env import ChannelPruneEnv
from prune_gym.export import export_slim, load_slim
from prune_gym.graph import discover_units
from prune_gym.policies import play, uniform_policy
from prune_gym.workload import Workload


@pytest.fixture(autouse=True)
def own_registry(monkeypatch):
    """What a test registers ends with it."""
    kinds = {module_type: list(registered) for module_type, registered in layers.registry._KINDS.items()}
    monkeypatch.setattr(layers.registry, "_KINDS", kinds)


class ChannelScale(nn.Module):
    """Scales each channel by a learned factor (as LayerScale does in ConvNeXt)."""

    def __init__(self, channels: int):
        super().__init__()
        self.scale = nn.Parameter(torch.linspace(0.5, 1.5, channels))

    def forward(self, x):
        return x * self.scale[:, None, None]


class ChannelScaleKind(layers.LayerKind):
    """It keeps its input's channels and holds a factor per channel: a member of its input's unit."""

    role = layers.Role.MEMBER

    def keep_outputs(self, module: ChannelScale, index: torch.Tensor) -> None:
        module.scale = layers.keep(module.scale, index)


class FunctionalConv(nn.Conv2d):
    """A conv whose forward calls the functional API, which torch.fx traces into unless told otherwise."""

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)


class ScaledNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.scale1 = nn.Conv2d(1, 16, 3, padding=1), ChannelScale(16)
        self.conv2, self.conv3 = FunctionalConv(16, 16, 3, padding=1), nn.Conv2d(16, 8, 3, padding=1)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        x = torch.relu(self.scale1(self.conv1(x)))
        x = torch.relu(self.conv3(torch.relu(self.conv2(x))))
        return self.fc(x.mean((2, 3)))


def test_a_users_layer_kinds_registered_from_outside_prune_an_episode_and_export(tmp_path):
    before = discover_units(ScaledNet(), (1, 12, 12))
    assert [u.producer for u in before.units] == ["conv3"] and "conv2" not in [lay.module for lay in before.layers]
    layers.register(ChannelScale, ChannelScaleKind())
    layers.register(FunctionalConv, layers.Conv())

    torch.manual_seed(0)
    model = ScaledNet().eval()
    images, labels = torch.randn(48, 1, 12, 12), torch.randint(0, 10, (48,))
    workload = Workload.from_module(model, [(images[:24], labels[:24])], [(images[24:], labels[24:])])
    env = ChannelPruneEnv(workload=workload, target_ratio=0.5, device="cpu", calibration_images=24)
    assert [(u.producer, u.members) for u in env.units] == [("conv1", ("scale1",)), ("conv2", ()), ("conv3", ())]
    assert env.graph.total_macs == sum(lay.macs for lay in before.layers) + 16 * 16 * 9 * 144
    info = play(env, uniform_policy(env.budget))
    assert info["macs_ratio"] <= 0.5
    kept, net = env.kept_indices[0], env.pruned_network
    assert len(kept) < 16 and torch.equal(net.scale1.scale, model.scale1.scale[kept])
    assert net.conv1.out_channels == net.conv2.in_channels == len(kept)
    export_slim(env, tmp_path, info)
    with torch.no_grad():
        assert torch.equal(load_slim(tmp_path, model=ScaledNet())(images), net(images))

    latency = ChannelPruneEnv(workload=workload, target_ratio=0.9, device="cpu", calibration_images=24,
                              budget="latency")  # the scale has no stand-in: its time stays in the rest
    assert play(latency, uniform_policy(latency.budget))["latency_ratio"] <= 0.9


class NoHooksKind(layers.LayerKind):
    role = layers.Role.MEMBER


class OutputsOnlyKind(layers.LayerKind):
    role, counted = layers.Role.LAYER, True
    keep_outputs = ChannelScaleKind.keep_outputs


class StringRoleKind(layers.LayerKind):
    role = "member"


@pytest.mark.parametrize("module_type, kind, message", [
    ("ChannelScale", ChannelScaleKind(), "register takes an nn.Module subclass, got 'ChannelScale'"),
    (ChannelScale(4), ChannelScaleKind(), "register takes an nn.Module subclass, got ChannelScale()"),
    (ChannelScale, ChannelScaleKind, "register takes a LayerKind instance, got the class ChannelScaleKind "
                                     "(pass ChannelScaleKind())"),
    (ChannelScale, None, "register takes a LayerKind instance for ChannelScale, got None"),
    (ChannelScale, StringRoleKind(), "StringRoleKind.role must be one of Role.LAYER, Role.MEMBER, Role.PASS, "
                                     "Role.FLATTEN, Role.COUPLES, got 'member'"),
    (ChannelScale, NoHooksKind(), "NoHooksKind cannot be registered: a member kind needs the hook keep_outputs"),
    (ChannelScale, OutputsOnlyKind(), "OutputsOnlyKind cannot be registered: a layer kind that the budgets count "
                                      "needs the hooks features, keep_inputs, positions, rows, outputs, "
                                      "columns_per_channel, macs, widths, standin"),
])
def test_a_bad_registration_is_refused_in_one_line(module_type, kind, message):
    with pytest.raises(layers.LayerKindError) as refused:
        layers.register(module_type, kind)
    assert str(refused.value) == message
    assert layers.kind_of(ChannelScale(4)) is layers.UNKNOWN


class Unknown(nn.Module):
    """A LayerNorm over the channels and a grouped conv with more outputs than inputs: nothing prunes them."""

    def __init__(self):
        super().__init__()
        self.conv1, self.norm = nn.Conv2d(1, 8, 3), nn.GroupNorm(2, 8)
        self.conv2, self.widen = nn.Conv2d(8, 8, 3), nn.Conv2d(8, 16, 3, groups=2)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.conv2(torch.relu(self.norm(self.conv1(x))))
        return self.fc(self.widen(x).mean((2, 3)))


def test_a_module_no_kind_handles_keeps_its_channels_whole_with_its_type_named():
    graph = discover_units(Unknown(), (1, 12, 12))
    assert graph.units == [] and graph.frozen == {"conv1": "GroupNorm at norm", "fc": "network output",
                                                  "conv2": "grouped conv (2 groups) at widen"}
    norm = nn.GroupNorm(2, 8)
    with pytest.raises(TypeError, match="cannot prune the output channels of GroupNorm"):
        layers.kind_of(norm).keep_outputs(norm, torch.arange(4))
    with pytest.raises(TypeError, match="no MACs formula for GroupNorm"):
        layers.kind_of(norm).macs(norm, torch.zeros(1, 8, 4, 4))


def test_a_batchnorm_gives_the_residual_refit_its_scale_only_with_running_statistics():
    """Without them it normalises each batch by its own: no fixed scale for the shortcut's drift."""
    bn, plain = nn.BatchNorm2d(4), nn.BatchNorm2d(4, affine=False)
    per_batch = nn.BatchNorm2d(4, track_running_stats=False)
    bn.weight.data, bn.running_var = torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.full((4,), 4.0 - bn.eps)
    assert torch.allclose(layers.kind_of(bn).residual_scale(bn), torch.tensor([0.5, 1.0, 1.5, 2.0]))
    assert torch.allclose(layers.kind_of(plain).residual_scale(plain), torch.ones(4) / (1 + plain.eps) ** 0.5)
    assert layers.kind_of(per_batch).residual_scale(per_batch) is None
