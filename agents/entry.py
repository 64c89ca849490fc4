"""A searcher named on the command line: a registered one, a class in the user's own file, or an SB3 algorithm.

`prune-gym league --agent` takes any of

    tpe                                  a registered searcher (`prune_gym.agents.searchers`)
    my_searchers.py:GreedySearcher       a `Searcher` subclass in a file of yours
    my_package.searchers:GreedySearcher  ... or in a module Python can import
    stable_baselines3:A2C                an SB3 algorithm, played one unit step at a time

and registers what it loads under its `name` (a class without one is called by its own name),
so that the trial loop runs, records and resumes it like a built-in searcher.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from prune_gym.agents.replay import EpisodeRewardReplayBuffer
from prune_gym.agents.sb3 import OffPolicySearcher, OnPolicySearcher, SB3Searcher
from prune_gym.agents.searcher import Searcher
from prune_gym.agents.searchers import SEARCHERS, register_searcher
from prune_gym.errors import PruneGymError

SB3_WARMUP = 10  # random trials before an off-policy algorithm of SB3's learns (the league's TD3 and SAC take 10)


def load_searcher(spec: str) -> type[Searcher]:
    """The searcher `spec` names (see the module's docstring), registered; a PruneGymError in one line when the
    module, file or class is missing or is not a searcher."""
    if spec in SEARCHERS:
        return SEARCHERS[spec]
    if ":" not in spec:
        raise PruneGymError(f"unknown agent {spec!r}: give a registered searcher ({', '.join(SEARCHERS)}) or "
                            f"MODULE:CLASS (a .py file or an importable module, and a class in it)")
    where, _, class_name = spec.rpartition(":")
    module = _import(where)
    cls = getattr(module, class_name, None)
    if cls is None:
        found = [name for name, c in inspect.getmembers(module, inspect.isclass)
                 if issubclass(c, (Searcher, BaseAlgorithm))]
        raise PruneGymError(f"{where} has no class {class_name!r} (searchers there: {', '.join(found) or 'none'})")
    if isinstance(cls, type) and issubclass(cls, BaseAlgorithm):
        registered = SEARCHERS.get(cls.__name__.lower())
        if getattr(registered, "algorithm", None) is cls:
            return registered  # SB3's TD3 is the built-in td3, say, or an adapter made before
        cls = sb3_searcher(cls)
    elif not (isinstance(cls, type) and issubclass(cls, Searcher)):
        raise PruneGymError(f"{spec} is not a Searcher subclass nor an SB3 algorithm")
    if not cls.name:
        cls.name = cls.__name__
    if SEARCHERS.get(cls.name) is not cls:
        register_searcher(cls)
    return cls


def _import(where: str) -> Any:
    """The module at `where`: a .py file (by path) or an importable module name."""
    if where.endswith(".py"):
        path = Path(where)
        if not path.is_file():
            raise PruneGymError(f"no file {where}")
        name = f"prune_gym_entry_{path.stem}"
        loaded = sys.modules.get(name)
        if loaded is not None and Path(loaded.__file__) == path.resolve():
            return loaded  # loaded before in this process: the classes it registered stay the ones used
        spec = importlib.util.spec_from_file_location(name, path.resolve())
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # so that the classes it defines pickle by reference
        spec.loader.exec_module(module)
        return module
    try:
        return importlib.import_module(where)
    except ModuleNotFoundError as exc:
        raise PruneGymError(f"no module {where} ({exc})") from None


def sb3_searcher(algorithm: type[BaseAlgorithm]) -> type[SB3Searcher]:
    """A searcher that plays SB3's `algorithm` with its defaults: an off-policy one learning after every trial
    from a replay buffer that pays each step the trial's reward, an on-policy one taking each trial as a
    rollout."""
    off_policy = issubclass(algorithm, OffPolicyAlgorithm)
    base = OffPolicySearcher if off_policy else OnPolicySearcher

    def _make_agent(self: SB3Searcher, env: gym.Env) -> BaseAlgorithm:
        if off_policy:
            return algorithm("MlpPolicy", env, seed=self.seed, device="cpu", learning_starts=self.warmup * self.n_units,
                             train_freq=(1, "episode"), gradient_steps=-1,
                             replay_buffer_class=EpisodeRewardReplayBuffer,
                             replay_buffer_kwargs={"moving_average_alpha": 0.0})  # the reward as it is
        sized = {"batch_size": self.n_units} if "batch_size" in inspect.signature(algorithm).parameters else {}
        return algorithm("MlpPolicy", env, n_steps=self.n_units, seed=self.seed, device="cpu", **sized)

    return type(f"{algorithm.__name__}Searcher", (base,), {
        "name": algorithm.__name__.lower(), "algorithm": algorithm, "default_warmup": SB3_WARMUP if off_policy else 0,
        "_make_agent": _make_agent, "__module__": __name__,
        "__doc__": f"SB3's {algorithm.__name__} with its defaults, as `prune_gym.agents.entry.sb3_searcher` plays it."})
