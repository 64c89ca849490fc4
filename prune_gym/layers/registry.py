"""Which layer kind handles each module type, and how to add a kind of your own.

prune-gym knows convolutions (grouped and depthwise ones too), linear layers, BatchNorm,
activations, dropout, pooling and flatten (one file each in this package). A module of a
registered type is traced as one call and handled by its kind; a module of another type
is traced into where torch.fx can, and where it is one call all the same (a
`leaf_modules` entry), the channels it reads and writes stay whole, the graph's frozen
reason naming its type ("MyBlock at body.0").

A kind of your own needs no change to the package: subclass `LayerKind`, set its `role`
and write the hooks the role needs (`REQUIRED_HOOKS`), then register an instance for your
module's type before building the env. A layer that scales each channel by a learned
factor keeps its input's channels and holds one factor per channel, a member of its
input's unit:

    import torch
    from torch import nn
    from prune_gym import layers

    class ChannelScale(nn.Module):
        def __init__(self, channels: int):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(channels))

        def forward(self, x):
            return x * self.scale[:, None, None]

    class ChannelScaleKind(layers.LayerKind):
        role = layers.Role.MEMBER

        def keep_outputs(self, module, index):
            module.scale = layers.keep(module.scale, index)

    layers.register(ChannelScale, ChannelScaleKind())

A subclass of a known layer whose forward computes what the layer computes takes that
layer's kind: `layers.register(MyConv, layers.Conv())`.
"""

from __future__ import annotations

from torch import nn

from prune_gym.errors import PruneGymError
from prune_gym.layers.base import COUNTED_HOOKS, REQUIRED_HOOKS, LayerKind, Role

_KINDS: dict[type[nn.Module], list[LayerKind]] = {}  # by module type, the newest registration first
UNKNOWN = LayerKind()  # of a module no kind accepts: its channels stay whole, and each hook refuses it by type


class LayerKindError(PruneGymError, TypeError):
    """A registration that prune-gym cannot use."""


def register(module_type: type[nn.Module], kind: LayerKind) -> None:
    """Handle modules of `module_type`, and of its subclasses that have no kind of their own, with `kind`;
    a later registration for the same type is asked first. Modules of the type are traced as one call."""
    if not (isinstance(module_type, type) and issubclass(module_type, nn.Module)):
        raise LayerKindError(f"register takes an nn.Module subclass, got {module_type!r}")
    if isinstance(kind, type) and issubclass(kind, LayerKind):
        raise LayerKindError(f"register takes a LayerKind instance, got the class {kind.__name__} "
                             f"(pass {kind.__name__}())")
    if not isinstance(kind, LayerKind):
        raise LayerKindError(f"register takes a LayerKind instance for {module_type.__name__}, got {kind!r}")
    if not isinstance(kind.role, Role):
        raise LayerKindError(f"{type(kind).__name__}.role must be one of {', '.join(str(r) for r in Role)}, "
                             f"got {kind.role!r}")
    required = REQUIRED_HOOKS[kind.role] + (COUNTED_HOOKS if kind.counted else ())
    missing = [hook for hook in required if getattr(type(kind), hook) is getattr(LayerKind, hook)]
    if missing:
        raise LayerKindError(f"{type(kind).__name__} cannot be registered: a {kind.role.value} kind"
                             f"{' that the budgets count' if kind.counted else ''} needs the hook"
                             f"{'s' * (len(missing) > 1)} {', '.join(missing)}")
    _KINDS.setdefault(module_type, []).insert(0, kind)


def kind_of(module: nn.Module) -> LayerKind:
    """The kind that handles `module`: the first that accepts it among those registered for its type, then
    for its base types in order; `UNKNOWN` if none does."""
    for cls in type(module).__mro__:
        for kind in _KINDS.get(cls, ()):
            if kind.accepts(module):
                return kind
    return UNKNOWN


def traced_whole(module: nn.Module) -> bool:
    """Whether torch.fx keeps `module` as one call: its very type is registered (a subclass may compute
    something else, and is traced into unless registered itself)."""
    return type(module) in _KINDS
