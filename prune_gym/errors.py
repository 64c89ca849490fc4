"""User-facing errors: the command line prints these as one line, never a traceback."""


class PruneGymError(Exception):
    """Base class of the errors caused by the user's input or machine, not by a bug."""


class UnknownNameError(PruneGymError, ValueError):
    """A model, data set or method name that is not registered."""

    def __init__(self, kind: str, name: str, valid: list[str]):
        super().__init__(f"unknown {kind} {name!r}; choose one of: {', '.join(valid)}")


class DataNotFoundError(PruneGymError, FileNotFoundError):
    """A data set that is neither on disk nor downloadable."""


class CheckpointError(PruneGymError):
    """A checkpoint that cannot be read or does not fit the model."""
