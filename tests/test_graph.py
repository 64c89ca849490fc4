"""Unit discovery from the fx graph: the zoo, users' models, and graphs it must refuse."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from prune_gym.graph import GraphError, discover_units
from prune_gym.models import build_model


def test_resnet20_prunes_block_internal_channels_and_keeps_residual_streams_whole():
    graph = discover_units(build_model("resnet20", 1, 10, 28), (1, 28, 28))
    assert [u.producer for u in graph.units] == [f"layer{s}.{b}.conv1" for s in (1, 2, 3) for b in range(3)]
    assert all(len(u.consumers) == 1 and u.consumers[0].residual is not None for u in graph.units)
    assert graph.frozen["conv1"] == "residual addition"  # the stem feeds the residual stream
    assert graph.frozen["fc"] == "network output"


def test_mobilenet_v1_depthwise_convs_follow_their_input():
    graph = discover_units(build_model("mobilenet_v1", 1, 10, 28), (1, 28, 28))
    assert len(graph.units) == 14
    first = graph.units[0]
    assert first.producer == "features.0.0"
    assert first.members == ("features.0.1", "features.1.0.0", "features.1.0.1")  # BN, depthwise conv, BN
    assert [c.module for c in first.consumers] == ["features.1.1.0"]
    assert graph.units[-1].consumers[0].module == "fc"  # the last pointwise conv feeds the classifier


def test_mobilenet_v2_prunes_expanded_channels_not_residual_ones():
    graph = discover_units(build_model("mobilenet_v2", 1, 10, 28), (1, 28, 28))
    producers = {u.producer for u in graph.units}
    assert "features.3.conv.0.0" in producers  # expansion of a block with a residual connection
    assert "features.3.conv.2" not in producers  # its projection is added to the shortcut
    assert "features.2.conv.2" not in producers  # block 3 adds block 2's output to its own: a residual stream
    assert "features.1.conv.1" in producers  # block 2 has no shortcut: block 1's projection is prunable


def test_flatten_into_a_linear_layer_spans_a_block_of_columns():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(),
                          nn.Flatten(), nn.Linear(6 * 5 * 5, 10))
    graph = discover_units(model, (1, 5, 5))
    assert [(u.producer, u.channels) for u in graph.units] == [("0", 4), ("2", 6)]
    consumer = graph.units[1].consumers[0]
    assert (consumer.module, consumer.block) == ("5", 25)
    assert [(layer.module, layer.in_unit, layer.out_unit) for layer in graph.layers] == [
        ("0", None, 0), ("2", 0, 1), ("5", 1, None)]


class Concatenated(nn.Module):
    """Two branches of 8 and 4 channels, concatenated into `head`: each is a range of one unit."""

    def __init__(self):
        super().__init__()
        self.left, self.right = nn.Conv2d(3, 8, 3), nn.Conv2d(3, 4, 3)
        self.left_only = nn.Conv2d(8, 4, 1)
        self.head = nn.Conv2d(12, 4, 1)

    def forward(self, x):
        left = torch.relu(self.left(x))
        return (self.head(torch.cat([left, self.right(x)], 1)) + self.left_only(left)).mean((2, 3))


class PaddedByFixedAmounts(nn.Module):
    """An option-A shortcut whose channel pad is written as constants: the slim net could not follow it."""

    def __init__(self):
        super().__init__()
        self.stem, self.conv = nn.Conv2d(3, 4, 3), nn.Conv2d(4, 8, 3, padding=1)
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        return self.head(torch.relu(self.conv(x) + F.pad(x, (0, 0, 0, 0, 2, 2)))).mean((2, 3))


class Gated(nn.Module):
    """A squeeze-and-excitation-like gate: channel i of the gate scales channel i of conv's output."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.gate = nn.Conv2d(8, 8, 1)
        self.head = nn.Conv2d(8, 4, 1)

    def forward(self, x):
        x = self.conv(x)
        x = x * torch.sigmoid(self.gate(F.adaptive_avg_pool2d(x, 1)))
        return self.head(x).mean((2, 3))


def test_a_concatenation_makes_its_inputs_ranges_of_one_unit():
    graph = discover_units(Concatenated(), (3, 8, 8))
    (unit,) = graph.units
    assert (unit.producers, unit.channels, unit.atoms, unit.granularity) == (("left", "right"), 12, (0, 8, 12), 3)
    assert unit.parts["left"] == (0, 8) and unit.parts["right"] == (8, 4)
    reads = {c.module: unit.parts.get(c.input_node, (0, 12)) for c in unit.consumers}
    assert reads == {"head": (0, 12), "left_only": (0, 8)}
    assert unit.part("right", torch.tensor([1, 7, 8, 11])).tolist() == [0, 3]


def test_a_channel_pad_by_fixed_amounts_freezes_with_the_remedy():
    graph = discover_units(PaddedByFixedAmounts(), (3, 8, 8), residual_streams=True)
    assert graph.frozen["stem"] == graph.frozen["conv"] == (
        "a channel pad by fixed amounts at node pad (compute them from the input's width)")


class PartsAtTheEdges(nn.Module):
    """A chunk read by a negative index and gated; a pad that widens to a fixed width; flattened maps
    concatenated. Only the first makes parts: the others would not survive a pruned input."""

    def __init__(self):
        super().__init__()
        self.conv, self.gate, self.head = nn.Conv2d(3, 8, 1), nn.Conv2d(3, 4, 1), nn.Conv2d(4, 4, 1)
        self.narrow, self.wide = nn.Conv2d(3, 4, 1), nn.Conv2d(8, 4, 1)
        self.left, self.right, self.fc = nn.Conv2d(3, 2, 1), nn.Conv2d(3, 2, 1), nn.Linear(4 * 8 * 8, 4)

    def forward(self, x):
        gated = self.conv(x).chunk(2, 1)[-1] * torch.sigmoid(self.gate(x))
        y = self.narrow(x)
        widened = self.wide(F.pad(y, (0, 0, 0, 0, 0, 8 - y.shape[1])))
        flat = torch.cat([self.left(x).flatten(1), self.right(x).flatten(1)], 1)
        return self.head(gated).mean((2, 3)) + widened.mean((2, 3)) + self.fc(flat)


def test_parts_need_whole_channels_and_pads_that_keep_the_share():
    graph = discover_units(PartsAtTheEdges(), (3, 8, 8), residual_streams=True)
    gated = next(u for u in graph.units if u.producer == "conv")
    assert gated.producers == ("conv", "gate") and (gated.channels, gated.atoms) == (8, (0, 4, 8))
    assert gated.parts["gate"] == (4, 4) and gated.parts["mul"] == (4, 4)  # the product carries the last piece
    assert graph.frozen["narrow"] == ("a channel pad at node pad whose amounts do not keep the input's share "
                                      "of the output")
    assert graph.frozen["left"] == graph.frozen["right"] == "cat at node cat"


def test_resnet20s_residual_streams_are_one_unit_through_its_padded_shortcuts():
    """Stage 1's 16 stream channels sit in the middle of stage 2's 32, which sit in the middle of stage 3's 64."""
    graph = discover_units(build_model("resnet20", 1, 10, 28), (1, 28, 28), residual_streams=True)
    stream = graph.units[0]
    assert stream.producers[0] == "conv1" and len(stream.producers) == 10 and stream.channels == 64
    assert stream.atoms == (0, 16, 24, 40, 48, 64) and stream.granularity == 8
    assert stream.parts["conv1"] == stream.parts["layer1.2.conv2"] == (24, 16)
    assert stream.parts["layer2.0.conv2"] == (16, 32) and "layer3.0.conv2" not in stream.parts
    assert [u.producer for u in graph.units[1:]] == [f"layer{s}.{b}.conv1" for s in (1, 2, 3) for b in range(3)]
    assert graph.frozen == {"fc": "network output"}


def test_a_gate_joins_its_producer_to_the_gated_unit():
    graph = discover_units(Gated(), (3, 8, 8))
    (unit,) = graph.units
    assert unit.producers == ("conv", "gate") and [c.module for c in unit.consumers] == ["gate", "head"]
    assert [(layer.module, layer.in_unit, layer.out_unit) for layer in graph.layers] == [
        ("conv", None, 0), ("gate", 0, 0), ("head", 0, None)]


class DataDependent(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = Branchy()

    def forward(self, x):
        return self.inner(x)


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)

    def forward(self, x):
        if x.sum() > 0:
            return self.conv(x)
        return x


def test_untraceable_model_names_the_module():
    with pytest.raises(GraphError, match="module 'inner'"):
        discover_units(DataDependent(), (1, 8, 8))


def test_layers_macs_add_up_to_the_models():
    from prune_gym.macs import count_macs

    model = build_model("mobilenet_v2", 1, 10, 28)
    graph = discover_units(model, (1, 28, 28))
    assert graph.total_macs == count_macs(model, (1, 28, 28))


@pytest.mark.parametrize("name, units", [("resnet20", 10), ("resnet56", 28), ("resnet18", 12), ("resnet34", 20),
                                         ("resnet50", 37), ("mobilenet_v2", 25)])
def test_every_zoo_model_with_residual_streams_has_every_mac_in_units(name, units):
    graph = discover_units(build_model(name, 1, 10, 28), (1, 28, 28), residual_streams=True)
    assert len(graph.units) == units and set(graph.frozen.values()) == {"network output"}
    assert all(layer.in_unit is not None or layer.out_unit is not None for layer in graph.layers)
