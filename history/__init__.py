"""The HDF5 store of past pruning runs that later runs learn from (schema: README.md here)."""

from prune_gym.history.errors import HistoryError
from prune_gym.history.records import Run, RunInfo, Scenario, Transitions, Weights
from prune_gym.history.schema import SCHEMA_VERSION
from prune_gym.history.store import HistoryStore, RunWriter

__all__ = [
    "SCHEMA_VERSION",
    "HistoryError",
    "HistoryStore",
    "Run",
    "RunInfo",
    "RunWriter",
    "Scenario",
    "Transitions",
    "Weights",
]
