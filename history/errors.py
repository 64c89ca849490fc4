"""The one error the history store raises for bad files, runs and states."""

from prune_gym.errors import PruneGymError


class HistoryError(PruneGymError):
    """A history file or run that cannot be used as asked; the message names the file or run."""
