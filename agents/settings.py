"""Named settings with defaults: what a searcher or the assistant takes, checked and parsed in one place.

A schema is a component's settings with their defaults (the default's type is the setting's
type), the few that take one of some names, and those that also take None. A search's
configuration checks its searcher's and its assistant's settings against their schemas once,
before anything is loaded; the command line parses NAME=VALUE by the same schemas.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from prune_gym.errors import PruneGymError


@dataclass(frozen=True)
class SettingsSchema:
    """:param name: how messages name the component's settings (``"amc-ddpg"``, ``"assistant"``)
    :param owner: how messages name the component itself (``"the amc-ddpg searcher"``)
    :param defaults: every setting, with its default
    :param choices: settings that take one of a few names
    :param nullable: settings that also take None
    :param minimum: settings with a least value (inclusive)
    """

    name: str
    owner: str
    defaults: Mapping[str, Any]
    choices: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    nullable: frozenset[str] = frozenset()
    minimum: Mapping[str, float] = field(default_factory=dict)

    def check(self, settings: Mapping[str, Any]) -> dict[str, Any]:
        """`settings` as a dict if each is a setting with a value of its default's type, else a PruneGymError."""
        for name, value in settings.items():
            if name not in self.defaults:
                raise PruneGymError(f"{self.owner} has no setting {name!r}; its settings: "
                                    f"{', '.join(sorted(self.defaults)) or 'none'}")
            default = self.defaults[name]
            if value is None and (name in self.nullable or default is None):
                continue
            if not _fits(value, default):
                raise PruneGymError(f"{self.name} setting {name} takes {_type_name(default)}, got {value!r}")
            if name in self.choices and value not in self.choices[name]:
                raise PruneGymError(f"{self.name} setting {name} is one of {', '.join(self.choices[name])}, "
                                    f"got {value!r}")
            if name in self.minimum and value < self.minimum[name]:
                raise PruneGymError(f"{self.name} setting {name} takes {self.minimum[name]:g} or more, got {value!r}")
        return dict(settings)

    def parse(self, text: str) -> tuple[str, Any]:
        """NAME=VALUE from the command line, the value read as the type of the setting's default."""
        name, equals, value = text.partition("=")
        if not equals:
            raise PruneGymError(f"a setting is NAME=VALUE, got {text!r}")
        if name not in self.defaults:
            self.check({name: None})  # names the choices
        default = self.defaults[name]
        if value.lower() == "none" and (name in self.nullable or default is None):
            return name, None
        try:
            if isinstance(default, bool):
                if value.lower() not in ("true", "false"):
                    raise ValueError
                parsed: Any = value.lower() == "true"
            elif isinstance(default, list):
                parsed = [int(v) for v in value.split(",")]
            elif default is None:
                parsed = float(value)
            else:
                parsed = type(default)(value)
        except ValueError:
            raise PruneGymError(f"{self.name} setting {name} takes {_type_name(default)}, got {value!r}") from None
        return name, self.check({name: parsed})[name]


def _fits(value: Any, default: Any) -> bool:
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, list):
        return isinstance(value, (list, tuple)) and all(isinstance(v, int) for v in value)
    return default is None or isinstance(value, type(default))


def _type_name(default: Any) -> str:
    if isinstance(default, list):
        return "a list of integers (e.g. 300,300)"
    if isinstance(default, bool):
        return "true or false"
    return {int: "an integer", float: "a number", str: "a string"}.get(type(default), "a number")
