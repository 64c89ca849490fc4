"""Presets: named sets of setting overrides, one module each; `PRESETS` maps each `--preset` name to its own.

A preset runs a method (`prune_gym.agents.methods`), or refines another registered preset,
with settings of its own: the searcher's (for the searchers that have them), the
assistant's, how the source's policies are rewritten, the warm-up. The user's own settings
override a preset's, and the search's configuration applies it before its one validation
(`SearchConfig.resolve`). Every module here is imported and each `Preset` it defines at
module level is registered, so a new preset is one new file; a preset of your own, defined
anywhere, joins them with `register_preset`. A benchmark's variant is a preset too, left
unregistered: its runs are recorded under the nearest registered preset's name, or the method's.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prune_gym.agents.methods import METHODS
from prune_gym.errors import PruneGymError, UnknownNameError

RecordsRescale = Callable[[float, "float | None"], str]  # (target ratio, source ratio) -> a rescale's name


@dataclass(frozen=True, eq=False)
class Preset:
    """:param name: what `--preset` and the studies call it
    :param base: the method it runs, or the registered preset it refines (whose settings it overrides)
    :param agent: searcher settings, applied where the searcher has them
    :param assistant: assistant settings (`prune_gym.agents.assistant.ASSISTANT_SETTINGS`); given, the
        assistant acts with any method
    :param assistant_across_models: assistant settings added (over `assistant`) where the source run pruned
        another model, whose policies reach the target through the unit mapping
    :param rescale: how the source's policies are rewritten for the preloaded trials
    :param records_rescale: ... for the assistant's records: a rescale, or a rule of the target's and the
        source's ratios
    :param warmup: trials of random fractions around p before the searcher acts
    :param weights: False: never the source's network weights, though the method takes them (for sources that
        kept none)
    """

    name: str
    base: str
    agent: Mapping[str, Any] = field(default_factory=dict)
    assistant: Mapping[str, Any] | None = None
    assistant_across_models: Mapping[str, Any] = field(default_factory=dict)
    rescale: str | None = None
    records_rescale: str | RecordsRescale | None = None
    warmup: int | None = None
    weights: bool | None = None

    def chain(self) -> list[Preset]:
        """The registered presets this one refines, then itself: the order their settings apply in."""
        if self.base in METHODS:
            return [self]
        if self.base not in PRESETS:
            raise PruneGymError(f"preset {self.name} refines {self.base!r}, neither a method nor a registered "
                                f"preset; choose one of: {', '.join([*METHODS, *PRESETS])}")
        return [*PRESETS[self.base].chain(), self]

    @property
    def method(self) -> str:
        """The method it runs."""
        return self.chain()[0].base

    @property
    def recorded_as(self) -> str:
        """The name its runs are recorded under: the nearest registered preset's, else the method's."""
        registered = [p.name for p in self.chain() if PRESETS.get(p.name) == p]
        return registered[-1] if registered else self.method

    def overrides(self) -> dict[str, Any]:
        """The chain's settings folded, later over earlier: agent, assistant (None: none given),
        assistant_across_models, rescale, records_rescale, warmup, weights."""
        folded: dict[str, Any] = {"agent": {}, "assistant": None, "assistant_across_models": {}, "rescale": None,
                                  "records_rescale": None, "warmup": None, "weights": None}
        for preset in self.chain():
            folded["agent"] = {**folded["agent"], **preset.agent}
            folded["assistant_across_models"] = {**folded["assistant_across_models"], **preset.assistant_across_models}
            if preset.assistant is not None:
                folded["assistant"] = {**(folded["assistant"] or {}), **preset.assistant}
            for key in ("rescale", "records_rescale", "warmup", "weights"):
                if getattr(preset, key) is not None:
                    folded[key] = getattr(preset, key)
        return folded

    def _key(self) -> tuple:
        return (self.name, self.base, tuple(sorted(self.agent.items())),
                None if self.assistant is None else tuple(sorted(self.assistant.items())),
                tuple(sorted(self.assistant_across_models.items())), self.rescale,
                self.records_rescale, self.warmup, self.weights)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Preset) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


def _discover() -> dict[str, Preset]:
    found: dict[str, Preset] = {}
    for module_info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        found.update({p.name: p for p in vars(module).values() if isinstance(p, Preset)})
    return dict(sorted(found.items()))


PRESETS: dict[str, Preset] = {}
PRESETS.update(_discover())


def preset(name: str) -> Preset:
    """The registered preset called `name`, or a PruneGymError naming the choices."""
    if name not in PRESETS:
        raise UnknownNameError("preset", name, list(PRESETS))
    return PRESETS[name]


def register_preset(new: Preset) -> Preset:
    """Make `new` available by its name; a name is registered once, and never a method's."""
    if not isinstance(new, Preset):
        raise PruneGymError(f"register_preset takes a Preset, got {new!r}")
    if new.name in METHODS or PRESETS.get(new.name, new) != new:
        raise PruneGymError(f"a method or preset called {new.name!r} is already registered")
    new.chain()  # refuses an unknown base
    PRESETS[new.name] = new
    return new
