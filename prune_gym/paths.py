"""Where prune-gym keeps what it caches (checkpoints, downloaded data)."""

from __future__ import annotations

import os
from pathlib import Path


def home_dir() -> Path:
    """$PRUNE_GYM_HOME, else ~/.cache/prune-gym."""
    return Path(os.environ.get("PRUNE_GYM_HOME", Path.home() / ".cache" / "prune-gym"))
