"""The built-in searchers, one module each; `SEARCHERS` maps each `--agent` name to its class.

Every module here is imported and each `Searcher` subclass it defines with a `name` is
registered, so a new searcher is one new file. A searcher of your own, defined anywhere,
joins them with `register_searcher`; then `SearchConfig(agent=its name)` runs, records
and resumes it like the built-in ones.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from prune_gym.agents.searcher import Searcher
from prune_gym.errors import PruneGymError


def _discover() -> dict[str, type[Searcher]]:
    found: dict[str, type[Searcher]] = {}
    for module_info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, Searcher) and cls.__module__ == module.__name__ and cls.name:
                found[cls.name] = cls
    return dict(sorted(found.items()))


SEARCHERS = _discover()
DEFAULT_SEARCHER = "amc-ddpg"  # the paper's searcher: `SearchConfig`'s default and the benchmark studies' reference
# The command line's default: the searcher the measurements recommend, the best from scratch at 300 trials in the
# league and the best drawing on a run of the same network (benchmarks/RESULTS.md, the library section) ...
RECOMMENDED_SEARCHER = "cmaes"
# ... and drawing on another network's run, whose policies, mapped unit by unit, only roughly guide the target's.
RECOMMENDED_ACROSS_NETWORKS = "tpe"


def recommended_searcher(target_model: str, source_model: str | None = None) -> str:
    """The command line's searcher for a search of `target_model` drawing on a run of `source_model` (None:
    from scratch): CMA-ES refines around policies of the same network, TPE models the target's own trials."""
    return RECOMMENDED_SEARCHER if source_model in (None, target_model) else RECOMMENDED_ACROSS_NETWORKS


def searcher_class(name: str) -> type[Searcher]:
    """The searcher called `name`, or a PruneGymError naming the choices."""
    if name not in SEARCHERS:
        raise PruneGymError(f"unknown agent {name!r}; choose one of: {', '.join(SEARCHERS)}")
    return SEARCHERS[name]


def register_searcher(cls: type[Searcher]) -> type[Searcher]:
    """Make `cls` available by its `name` (usable as a class decorator); a name is registered once."""
    if not (isinstance(cls, type) and issubclass(cls, Searcher)) or not cls.name:
        raise PruneGymError(f"register_searcher takes a Searcher subclass with a name, got {cls!r}")
    if SEARCHERS.get(cls.name, cls) is not cls:
        raise PruneGymError(f"a searcher called {cls.name!r} is already registered: {SEARCHERS[cls.name]}")
    SEARCHERS[cls.name] = cls
    return cls
