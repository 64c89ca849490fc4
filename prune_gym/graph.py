"""Prunable units, discovered from the model's torch.fx graph.

A unit is a channel dimension that one layer (the producer: a conv or linear layer)
creates and other layers (the consumers) read. Channel-wise layers in between (BatchNorm,
activations, pooling, a depthwise or grouped conv whose outputs follow its inputs) pass its
channels on; those that hold state per channel (BatchNorm, a grouped conv) are members,
sliced with the producer, a grouped conv's channels in whole groups. What each module is
comes from its layer kind (`prune_gym.layers`).
Channels sit in dimension 1 (N, C, ...), or last where a linear layer maps a (N, ..., C)
tensor, as the MLPs of ConvNeXt and vision transformers do; such a unit is followed only
through element-wise operations into the next linear layer.

The channels of a tensor are tracked through the graph with a union-find. An operation
that makes channels of several tensors one joins their sets where pruning can follow it,
and otherwise freezes the joined set whole:

* a gate (a product of two tensors with the same channels, as squeeze-excitation makes)
  joins the gate's producer to the unit: both lose the same channels;
* a concatenation along the channels makes each input a range (a part) of one unit, and
  a chunk makes each piece one; such a unit keeps the same share of every part: the slim
  network's own `chunk` then still cuts equal pieces and a pad keeps its proportions, and
  every layer's MACs stay linear in the unit's kept fraction;
* residual additions couple channels across layers. Residual streams are left whole by
  default, as PocketFlow and AMC do for ResNets: pruning them forces one kept set on every
  block (`residual_streams=True` makes each a unit whose producers are every layer that
  adds into it). A CIFAR ResNet's zero-padded "option A" shortcut places a stage's stream
  in the middle of the next, wider one (which torch-pruning mis-groups): the three stages'
  streams are then one unit of parts, provided the pad amounts follow the input's width;
* the network's input and output channels are fixed by the data;
* operations this module does not know are treated as coupling, never guessed at.

A model that torch.fx cannot trace is refused with the module where tracing failed, and
the remedy: `leaf_modules` keeps such a module as one call, its channels whole.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from prune_gym.errors import PruneGymError
from prune_gym.layers import Role, kind_of, traced_whole

CHANNELWISE_FUNCTIONS = {F.relu, F.relu6, F.leaky_relu, F.hardswish, F.hardsigmoid, F.hardtanh, F.silu, F.gelu,
                         F.mish, F.elu, torch.relu, torch.sigmoid, torch.tanh, F.dropout, F.max_pool2d, F.avg_pool2d,
                         F.adaptive_avg_pool2d, F.adaptive_max_pool2d}
CHANNELWISE_METHODS = {"relu", "relu_", "sigmoid", "tanh", "contiguous", "clone", "detach"}
# What keeps channels where they are in any layout, (N, ..., C) included: element-wise operations.
ELEMENTWISE_FUNCTIONS = CHANNELWISE_FUNCTIONS - {F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d,
                                                 F.adaptive_max_pool2d}
SCALAR_ARITHMETIC = (operator.mul, operator.truediv, operator.add, operator.sub, torch.mul)
ADDITIONS = {operator.add, operator.iadd, torch.add}
PRODUCTS = {operator.mul, operator.imul, torch.mul}


class GraphError(PruneGymError):
    """A model whose graph cannot be analysed."""


@dataclass(frozen=True)
class ResidualLink:
    """The consumer's output, after an optional BatchNorm, is added to a shortcut."""

    bn: str | None  # module name of the BatchNorm (a kind with a `residual_scale`) between consumer and addition
    shortcut: str  # fx node name of the other operand of the addition


@dataclass(frozen=True)
class Consumer:
    module: str  # module name
    node: str  # fx node calling the module
    input_node: str  # fx node feeding the unit's channels to it
    block: int  # input columns per channel: 1, or H*W for a linear layer after a flatten
    residual: ResidualLink | None


@dataclass(frozen=True)
class Unit:
    index: int
    producer: str
    channels: int
    members: tuple[str, ...]  # channel-wise modules sliced with the producer (BatchNorm, depthwise conv)
    nodes: tuple[str, ...]  # fx nodes whose output carries the unit's channels
    consumers: tuple[Consumer, ...]
    features: dict[str, float]  # static description of the producer, for observations
    dim: int = 1  # where its channels sit in the tensors it flows through: 1, or -1 (channels last)
    producers: tuple[str, ...] = ()  # every layer whose output channels are the unit's, `producer` first
    granularity: int = 1  # counts go in steps of this many: a grouped conv member's group width, or see `atoms`
    # Modules and nodes that carry only part of the unit's channels (a concatenation's inputs, a chunk's
    # pieces, a padded shortcut's input): name -> (offset, width) among the unit's channels.
    parts: dict[str, tuple[int, int]] = field(default_factory=dict)
    atoms: tuple[int, ...] = ()  # where parts begin and end, 0 and `channels` included; () if none

    def part(self, name: str, index: torch.Tensor) -> torch.Tensor:
        """The unit's kept channels `index` as indices of the channels `name` carries."""
        if name not in self.parts:
            return index
        offset, width = self.parts[name]
        return index[(index >= offset) & (index < offset + width)] - offset

    def width(self, name: str) -> int:
        """How many of the unit's channels `name` carries."""
        return self.parts[name][1] if name in self.parts else self.channels


@dataclass(frozen=True)
class Layer:
    """A conv or linear layer's MACs and the units its input and output channels belong to."""

    module: str
    macs: int
    params: int
    in_unit: int | None
    out_unit: int | None


@dataclass
class PruningGraph:
    graph_module: fx.GraphModule
    input_shape: tuple[int, ...]
    units: list[Unit]
    layers: list[Layer]
    frozen: dict[str, str] = field(default_factory=dict)  # producer module -> why its channels stay whole
    leaf_modules: tuple[str, ...] = ()  # modules traced as single calls
    residual_streams: bool = False  # whether residual streams are units

    @property
    def total_macs(self) -> int:
        return sum(layer.macs for layer in self.layers)


class _Channels:
    """Union-find set of tensor channel dimensions that must be pruned together.

    A set may hold another at an offset: a concatenation's inputs are ranges of its output,
    a chunk's pieces ranges of its input. Each set knows where its channel 0 sits among its
    parent's (`offset`); the root spans them all (`span`)."""

    def __init__(self, producer: fx.Node | None = None, frozen: str | None = None, last: bool = False,
                 width: int = 0):
        self.parent: _Channels = self
        self.offset = 0  # where this set's channel 0 sits among its parent's channels
        self.width = width  # the channels of the tensors this set was made for
        self.span = width  # of a root: the channels of all its sets, placed at their offsets
        self.producers: list[fx.Node] = [producer] if producer is not None else []
        self.frozen = frozen
        self.last = last  # channels in the last dimension of a (N, ..., C) tensor
        self.granularity = 1  # channels are kept in whole groups of this many (a grouped conv's group width)
        self.members: list[fx.Node] = []
        self.nodes: list[fx.Node] = []
        self.consumers: list[tuple[fx.Node, fx.Node, int]] = []  # (consumer, input node, block)

    def root(self) -> _Channels:
        return self.locate()[0]

    def locate(self) -> tuple[_Channels, int]:
        """The root of this set, and where this set's channel 0 sits among the root's channels."""
        node, offset = self, 0
        while node.parent is not node:
            offset += node.offset
            node = node.parent
        return node, offset


def _union(a: _Channels, b: _Channels, reason: str | None, at: int = 0) -> _Channels:
    """One set of the two, `b`'s channel 0 being `a`'s channel `at`; frozen for `reason` (None: a coupling
    pruning can follow), or when the two already meet at another offset."""
    (a, a_at), (b, b_at) = a.locate(), b.locate()
    shift = a_at + at - b_at  # where b's root starts among a's root's channels
    if a is b:
        if shift:
            reason = reason or "channels joined at two different offsets"
    else:
        if shift < 0:  # the root keeps the lowest offset
            a, b, shift = b, a, -shift
        b.parent, b.offset = a, shift
        a.span = max(a.span, shift + b.span)
        a.members += b.members
        a.nodes += b.nodes
        a.consumers += b.consumers
        a.producers += b.producers
        a.granularity = math.lcm(a.granularity, b.granularity)
    a.frozen = a.frozen or reason or b.frozen
    return a


def _freeze(channels: _Channels, reason: str) -> None:
    root = channels.root()
    root.frozen = root.frozen or reason


class _Tracer(fx.Tracer):
    """fx's tracer, which also keeps the user's `leaf_modules` (qualified names) and the modules of a registered
    layer kind as single calls."""

    def __init__(self, leaf_modules: Sequence[str] = ()):
        super().__init__()
        self.leaf_modules = tuple(leaf_modules)

    def is_leaf_module(self, module: nn.Module, qualified_name: str) -> bool:
        return (qualified_name in self.leaf_modules or traced_whole(module)
                or super().is_leaf_module(module, qualified_name))


def trace(model: nn.Module, leaf_modules: Sequence[str] = ()) -> fx.GraphModule:
    """Symbolic trace, with the failing module named when it fails; `leaf_modules` are not traced into."""
    missing = [name for name in leaf_modules if name not in dict(model.named_modules())]
    if missing:
        raise GraphError(f"leaf_modules names no module of {type(model).__name__}: {', '.join(missing)}")
    tracer = _Tracer(leaf_modules)
    failed_in: list[str] = []  # innermost module first
    call_module = tracer.call_module

    def tracking_call_module(module, forward, args, kwargs):
        try:
            return call_module(module, forward, args, kwargs)
        except Exception:
            failed_in.append(tracer.path_of_module(module))
            raise

    tracer.call_module = tracking_call_module
    try:
        graph = tracer.trace(model)
    except Exception as exc:  # fx raises many kinds of errors on untraceable code
        cause = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        if failed_in and failed_in[0]:
            raise GraphError(f"cannot trace module {failed_in[0]!r} "
                             f"({type(model.get_submodule(failed_in[0])).__name__})"
                             f" with torch.fx ({cause}); pass leaf_modules=[{failed_in[0]!r}] to keep it as one call "
                             f"whose channels stay whole") from exc
        raise GraphError(f"cannot trace the forward of {type(model).__name__} with torch.fx ({cause}); "
                         f"move the data-dependent code into a submodule and pass it in leaf_modules") from exc
    return fx.GraphModule(model, graph)


class _ShapeAndSizeProp(ShapeProp):
    """fx's shape propagation, which also keeps the integers that shape arithmetic computes (`size`)."""

    def run_node(self, n: fx.Node):
        result = super().run_node(n)
        if isinstance(result, int) or isinstance(result, (tuple, list)) and all(isinstance(v, int) for v in result):
            n.meta["size"] = result
        return result


def _size(arg) -> int | None:
    """An integer argument's value at trace time; None if it is not an integer."""
    value = arg.meta.get("size") if isinstance(arg, fx.Node) else arg
    return value if isinstance(value, int) else None


def _shape(node: fx.Node) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta")
    return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None


def _holds_tensors(node: fx.Node) -> bool:
    """Whether the node's value is a tuple or list of tensors (what chunk and split return)."""
    meta = node.meta.get("tensor_meta")
    return isinstance(meta, (tuple, list)) and any(hasattr(m, "shape") for m in meta)


def _indexes_channels(index) -> bool:
    if not isinstance(index, tuple):
        index = (index,)
    return len(index) > 1 and index[1] != slice(None)


def discover_units(model: nn.Module, input_shape: tuple[int, ...], leaf_modules: Sequence[str] = (),
                   residual_streams: bool = False) -> PruningGraph:
    """Trace `model` and find its prunable units, for inputs of `input_shape` (C, H, W); `leaf_modules`
    (qualified names) are kept as single calls, their channels whole (for code fx cannot trace);
    `residual_streams` makes the channels that residual additions join a unit instead of freezing them."""
    model = model.eval()
    gm = trace(model, leaf_modules)
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    with torch.no_grad():
        _ShapeAndSizeProp(gm).propagate(torch.zeros(1, *input_shape, device=device))
    modules = dict(gm.named_modules())
    channels: dict[fx.Node, tuple[_Channels, int]] = {}  # node -> (channel set, columns per channel)
    called: dict[str, int] = {}

    def tensor_args(node: fx.Node) -> list[fx.Node]:
        return [a for a in node.all_input_nodes if a in channels]

    def passthrough(node: fx.Node, source: fx.Node) -> None:
        ch, block = channels[source]
        ch.root().nodes.append(node)
        channels[node] = (ch, block)

    def new_set(node: fx.Node, producer: fx.Node | None = None, frozen: str | None = None,
                last: bool = False) -> None:
        shape = _shape(node)
        if shape is not None:
            ch = _Channels(producer, frozen, last, shape[-1] if last else shape[1] if len(shape) > 1 else 1)
            ch.nodes.append(node)
            channels[node] = (ch, 1)

    for node in gm.graph.nodes:
        inputs = tensor_args(node)
        if node.op == "placeholder":
            new_set(node, frozen="network input")
        elif node.op == "output":
            for a in inputs:
                _freeze(channels[a][0], "network output")
        elif node.op == "call_module":
            module = modules[node.target]
            kind = kind_of(module)
            called[node.target] = called.get(node.target, 0) + 1
            if kind.role is Role.LAYER:
                ch, block = channels[inputs[0]]
                last = kind.channels_last(module, _shape(node) or ())
                if last != ch.root().last:  # it reads another dimension than the one holding the channels
                    _freeze(ch, f"{type(module).__name__} at {node.target} reads dimension {-1 if last else 1} of "
                                f"a tensor whose channels are in dimension {1 if last else -1}")
                ch.root().consumers.append((node, inputs[0], block))
                new_set(node, producer=node, last=last)
            elif kind.role in (Role.MEMBER, Role.PASS) and inputs and (
                    kind.elementwise or not channels[inputs[0]][0].root().last):
                if kind.role is Role.MEMBER:
                    root = channels[inputs[0]][0].root()
                    root.members.append(node)
                    root.granularity = math.lcm(root.granularity, kind.granularity(module))
                passthrough(node, inputs[0])
            elif kind.role is Role.FLATTEN and inputs:
                _flatten(node, inputs[0], channels, passthrough, new_set)
            else:
                reason = kind.describe(module, node.target)
                for a in inputs:
                    _freeze(channels[a][0], reason)
                new_set(node, frozen=reason)
        elif node.op in ("call_function", "call_method"):
            _visit_function(node, inputs, channels, passthrough, new_set, residual_streams)
        elif node.op == "get_attr":
            new_set(node, frozen="constant")

    shared = [name for name, n in called.items() if n > 1]
    units, frozen = _collect_units(gm, modules, channels, shared)
    layers = _layers(gm, modules, units)
    return PruningGraph(gm, tuple(input_shape), units, layers, frozen, tuple(leaf_modules), residual_streams)


def _visit_function(node, inputs, channels, passthrough, new_set, residual_streams: bool) -> None:
    """Channel bookkeeping for functions and tensor methods."""
    target = node.target
    name = getattr(target, "__name__", target)
    shape = _shape(node)
    if shape is None and inputs and _holds_tensors(node):  # chunk, split, unbind: parts of the channels
        if not _chunks_channels(node, channels):
            _couple(node, inputs, channels, new_set, f"parts of a tensor ({name} at node {node.name})")
        channels[inputs[0]][0].root().nodes.append(node)
        channels[node] = channels[inputs[0]]  # its items are read through getitem
        return
    if shape is None:  # size(), shape arithmetic and other non-tensors
        return
    if not inputs:
        new_set(node, frozen=f"a new tensor ({name} at node {node.name})")
        return
    first = inputs[0]
    in_shape = _shape(first)
    if channels[first][0].root().last:  # channels last: only element-wise operations keep them in place
        if target in ELEMENTWISE_FUNCTIONS or target in CHANNELWISE_METHODS or \
                len(inputs) == 1 and target in SCALAR_ARITHMETIC:
            passthrough(node, first)
        else:
            _couple(node, inputs, channels, new_set, f"{name} at node {node.name} on channels-last tensors")
    elif target in CHANNELWISE_FUNCTIONS or target in CHANNELWISE_METHODS or _is_stochastic_depth(target):
        passthrough(node, first)
    elif target in (torch.flatten, "flatten", "view", "reshape"):
        _flatten(node, first, channels, passthrough, new_set)
    elif target in ("mean", torch.mean) and in_shape and len(in_shape) == 4 and shape[:2] == in_shape[:2]:
        passthrough(node, first)
    elif target == operator.getitem and "chunks" in first.meta and isinstance(node.args[1], int):  # one piece
        new_set(node)
        _union(channels[first][0], channels[node][0], None, at=node.args[1] % first.meta["chunks"] * shape[1])
    elif target == operator.getitem and not _indexes_channels(node.args[1]):
        passthrough(node, first)
    elif target == F.pad:
        _pad(node, first, channels, passthrough, new_set)
    elif target in (torch.cat, torch.concat) and _concatenates_channels(node, inputs, channels):
        new_set(node)
        offset = 0
        for part in (node.args or [node.kwargs["tensors"]])[0]:
            _union(channels[node][0], channels[part][0], None, at=offset)
            offset += _shape(part)[1]
    elif len(inputs) == 1 and target in SCALAR_ARITHMETIC:
        passthrough(node, first)  # arithmetic with a scalar
    elif len(inputs) == 2 and _same_channels(inputs, channels) and (
            target in PRODUCTS or target in ADDITIONS and residual_streams):
        root = _union(channels[inputs[0]][0], channels[inputs[1]][0], None)  # channel i meets channel i
        root.nodes.append(node)
        channels[node] = (channels[inputs[0]][0], 1)  # the channels of its inputs, wherever they sit in the root
    elif target in ADDITIONS:
        _couple(node, inputs, channels, new_set, "residual addition")
    elif target in PRODUCTS:
        _couple(node, inputs, channels, new_set, f"a product of tensors with different channels at node {node.name}")
    else:
        _couple(node, inputs, channels, new_set, f"{name} at node {node.name}")


def _chunks_channels(node: fx.Node, channels) -> bool:
    """Whether `node` chunks a tensor's channels into equal pieces (marked for its getitems); an equal share
    of each piece's channels is kept, so the slim network's `chunk` cuts where the pruned pieces end."""
    args = dict(zip(("input", "chunks", "dim"), node.args)) | node.kwargs
    source, chunks = args["input"], _size(args.get("chunks"))
    shape = _shape(source)
    if node.target not in ("chunk", torch.chunk) or chunks is None or channels[source][0].root().last or \
            shape is None or len(shape) < 2 or _size(args.get("dim", 0)) not in (1, 1 - len(shape)) or \
            shape[1] % chunks or not _unflattened([source], channels):
        return False
    node.meta["chunks"] = chunks
    return True


def _concatenates_channels(node: fx.Node, inputs: list[fx.Node], channels) -> bool:
    """Whether `node` concatenates (N, C, ...) tensors along their channels: each becomes a range of the
    output's channels, and the slim network concatenates what each kept."""
    args = dict(zip(("tensors", "dim"), node.args)) | node.kwargs
    parts, dim = args.get("tensors"), _size(args.get("dim", 0))
    shape = _shape(node)
    return isinstance(parts, (list, tuple)) and all(p in inputs for p in parts) and len(shape) > 1 and \
        dim in (1, 1 - len(shape)) and not any(channels[p][0].root().last for p in parts) and \
        _unflattened(parts, channels)


def _pad(node, source, channels, passthrough, new_set) -> None:
    """A spatial pad keeps the channels; a channel pad places them at an offset among zeros (a CIFAR ResNet's
    "option A" shortcut). Its amounts must follow the input's width, as `PadShortcut`'s do, for the slim
    network to pad its pruned input by the same share: fixed amounts freeze the channels."""
    pad = node.args[1] if len(node.args) > 1 else node.kwargs["pad"]
    shape = _shape(source)
    channel_pad = pad[2 * (len(shape) - 2):]
    if len(pad) < 2 * (len(shape) - 1) or all(p == 0 for p in channel_pad):  # the spatial dimensions only
        passthrough(node, source)
        return
    width, amounts = shape[1], [_size(p) for p in channel_pad]
    proportional = len(channel_pad) == 2 and None not in amounts and all(
        [_size_at_width(p, source, w) for p in channel_pad] == [a * w // width for a in amounts]
        for w in (2 * width, width // math.gcd(width, *amounts)))
    if not proportional or channels[source][0].root().last or not _unflattened([source], channels):
        reason = f"a channel pad by fixed amounts at node {node.name} (compute them from the input's width)" \
            if not any(isinstance(p, fx.Node) for p in channel_pad) else \
            f"a channel pad at node {node.name} whose amounts do not keep the input's share of the output"
        _couple(node, [source], channels, new_set, reason)
        return
    new_set(node)
    _union(channels[node][0], channels[source][0], None, at=amounts[0])


SHAPE_ARITHMETIC = {operator.getitem, operator.mul, operator.floordiv, operator.add, operator.sub}


def _size_at_width(arg, source: fx.Node, width: int) -> Any:
    """What an integer argument would be, were `source` `width` channels wide: its shape arithmetic on
    `source`, computed again; None where it reads anything else."""
    if not isinstance(arg, fx.Node):
        return arg if isinstance(arg, int) else None
    shape = (_shape(source)[0], width, *_shape(source)[2:])
    if arg.op == "call_function" and arg.target is getattr and arg.args == (source, "shape") or \
            arg.op == "call_method" and arg.target == "size" and arg.args == (source,):
        return shape
    if arg.op == "call_method" and arg.target == "size" and len(arg.args) == 2 and arg.args[0] is source:
        return shape[arg.args[1]]
    if arg.op == "call_function" and arg.target in SHAPE_ARITHMETIC:
        values = [_size_at_width(a, source, width) for a in arg.args]
        return None if None in values else arg.target(*values)
    return None


def _is_stochastic_depth(target) -> bool:
    """torchvision's stochastic depth (EfficientNet, ConvNeXt): it drops whole samples, never channels."""
    return getattr(target, "__name__", None) == "stochastic_depth" and \
        getattr(target, "__module__", "").startswith("torchvision.ops")


def _same_channels(inputs: list[fx.Node], channels) -> bool:
    """Whether two (N, C, ...) tensors have the same channels, whatever they broadcast over."""
    shapes = [_shape(a) for a in inputs]
    return all(shape is not None and len(shape) == len(shapes[0]) >= 2 for shape in shapes) and \
        shapes[0][1] == shapes[1][1] and _unflattened(inputs, channels)


def _unflattened(inputs, channels) -> bool:
    """Whether each input holds one column per channel in dimension 1 (not a flatten's block of them)."""
    return all(channels[a][1] == 1 for a in inputs)


def _couple(node, inputs, channels, new_set, reason: str) -> None:
    """An operation that mixes or moves channels: its inputs' sets become one, frozen, and so is its output."""
    root = channels[inputs[0]][0]
    for a in inputs[1:]:
        root = _union(root, channels[a][0], reason)
    _freeze(root, reason)
    new_set(node, frozen=reason)


def _flatten(node, source, channels, passthrough, new_set) -> None:
    """(N, C, H, W) -> (N, C*H*W): each channel becomes a block of H*W columns; other reshapes couple."""
    shape, in_shape = _shape(node), _shape(source)
    if in_shape and len(in_shape) == 4 and shape and len(shape) == 2 and shape[1] == math.prod(in_shape[1:]) \
            and not channels[source][0].root().last:
        passthrough(node, source)
        channels[node] = (channels[source][0], in_shape[2] * in_shape[3])
    else:
        _freeze(channels[source][0], f"reshape at {node.name}")
        new_set(node, frozen=f"reshape at {node.name}")


def _residual_link(consumer: fx.Node, modules: dict[str, nn.Module]) -> ResidualLink | None:
    """consumer -> [BatchNorm] -> add(., shortcut), as at the end of a ResNet block (a BatchNorm, or any module
    whose kind gives a `residual_scale`)."""
    node, bn = consumer, None
    if len(node.users) == 1:
        (user,) = node.users
        if user.op == "call_module" and kind_of(modules[user.target]).residual_scale(modules[user.target]) is not None:
            node, bn = user, user.target
    if len(node.users) != 1:
        return None
    (add,) = node.users
    if add.op == "call_function" and add.target in ADDITIONS and len(add.all_input_nodes) == 2:
        other = next(a for a in add.all_input_nodes if a is not node)
        return ResidualLink(bn, other.name)
    return None


def _collect_units(gm, modules, channels, shared) -> tuple[list[Unit], dict[str, str]]:
    roots: list[_Channels] = []
    for ch, _ in channels.values():
        root = ch.root()
        if root.producers and root not in roots:
            roots.append(root)
    order = {node: i for i, node in enumerate(gm.graph.nodes)}
    roots.sort(key=lambda r: min(order[p] for p in r.producers))
    units, frozen = [], {}
    for root in roots:
        reason = root.frozen or ("no consumer" if not root.consumers else None)
        touched = [p.target for p in root.producers] + [m.target for m in root.members]
        touched += [c.target for c, _, _ in root.consumers]
        if reason is None and any(t in shared for t in touched):
            reason = "a module called more than once"
        if reason is not None:
            frozen.update({p.target: reason for p in root.producers})
            continue
        parts = {node.name: _part(channels[node][0], root) for node in root.nodes}
        parts.update({n.target: parts[n.name] for n in (*root.producers, *root.members)})
        parts = {name: part for name, part in parts.items() if part != (0, root.span)}
        atoms = tuple(sorted({0, root.span, *(b for o, w in parts.values() for b in (o, o + w))})) if parts else ()
        if atoms and root.granularity > 1:
            frozen.update({p.target: "a grouped conv on a unit with parts" for p in root.producers})
            continue
        if atoms and math.gcd(*(b - a for a, b in zip(atoms, atoms[1:]))) == 1:
            frozen.update({p.target: f"parts of {root.span} channels with no common width: an equal share of each "
                                     f"keeps them all" for p in root.producers})
            continue
        producer_nodes = sorted(root.producers, key=order.__getitem__)  # several when a gate joined them
        producer_node = producer_nodes[0]
        producer = producer_node.target
        module = modules[producer]
        features = {
            **kind_of(module).features(module, _shape(producer_node.all_input_nodes[0])),
            "out_channels": float(root.span),  # the unit's, when the producer writes only part of it
            "depthwise_members": float(sum(kind_of(modules[m.target]).counted for m in root.members)),
        }
        # A shortcut correction is well defined only when the unit feeds one layer: with several,
        # the "shortcut" of one consumer may be computed from another consumer of the same unit.
        single = len(root.consumers) == 1
        consumers = tuple(Consumer(c.target, c.name, inp.name, block, _residual_link(c, modules) if single else None)
                          for c, inp, block in root.consumers)
        # A unit with parts keeps the same share of each (see `proportional`): counts go in steps of the
        # channels over the largest width that divides every part.
        step = root.span // math.gcd(*(b - a for a, b in zip(atoms, atoms[1:]))) if atoms else root.granularity
        units.append(Unit(len(units), producer, root.span, tuple(m.target for m in root.members),
                          tuple(n.name for n in root.nodes), consumers, features, -1 if root.last else 1,
                          tuple(p.target for p in producer_nodes), step, parts, atoms))
    return units, frozen


def _part(channels: _Channels, root: _Channels) -> tuple[int, int]:
    """(offset, width) of a set's channels among its root's."""
    found, offset = channels.locate()
    assert found is root
    return offset, channels.width


def _layers(gm, modules, units) -> list[Layer]:
    out_unit = {p: u.index for u in units for p in u.producers}
    in_unit = {c.module: u.index for u in units for c in u.consumers}
    in_unit.update({m: u.index for u in units for m in u.members if kind_of(modules[m]).counted})
    layers = []
    for node in gm.graph.nodes:
        if node.op == "call_module" and kind_of(modules[node.target]).counted:
            module = modules[node.target]
            macs = kind_of(module).macs(module, torch.empty(_shape(node), device="meta"))
            layers.append(Layer(node.target, macs, sum(p.numel() for p in module.parameters()),
                                in_unit.get(node.target), out_unit.get(node.target)))
    return layers
