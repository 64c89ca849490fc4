"""The on-disk layout's constants and version check; README.md in this folder documents it.

Bump SCHEMA_VERSION on any change an older reader would misread; older files stay readable.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from prune_gym.history.errors import HistoryError

FORMAT = "prune-gym history"
SCHEMA_VERSION = 1

STATUSES = ("running", "finished", "interrupted")
ORIGIN_MAX_LEN = 16

# One row per trial; `origin` is ASCII, e.g. b"warmup", b"actor", b"assistant".
TRIAL_DTYPE = np.dtype(
    [
        ("reward", "<f8"),
        ("accuracy", "<f8"),
        ("macs_ratio", "<f8"),
        ("wall_time", "<f8"),
        ("origin", f"S{ORIGIN_MAX_LEN}"),
        ("admitted", "?"),
    ]
)
PER_TRIAL = ("observations", "actions", "trials")

# Rows per chunk along the trial axis. The per-trial datasets are deliberately not
# compressed. Each append rewrites the open chunk; a compressed chunk changes size, so HDF5
# moves it and may write the new copy over bytes that the file's on-disk index still points
# to. A writer killed between that write and the metadata flush left acknowledged trials
# unreadable in 16 of 300 SIGKILLs at random moments; uncompressed, 0 of 300, because a
# chunk keeps its place and its old rows' bytes (benchmarks/probes/history_crash.py, RESULTS.md).
OBSERVATION_CHUNK = 16
ROW_CHUNK = 64


def check_schema(f: h5py.File, path: Path) -> None:
    """Refuse files that are not histories, or that a newer prune-gym wrote."""
    if f.attrs.get("format") != FORMAT or "schema_version" not in f.attrs:
        raise HistoryError(f"{path} is an HDF5 file but not a prune-gym history (no format/schema_version attributes)")
    version = int(f.attrs["schema_version"])
    if version > SCHEMA_VERSION:
        raise HistoryError(
            f"{path} has history schema version {version}, newer than the {SCHEMA_VERSION} "
            f"this prune-gym reads; upgrade prune-gym"
        )


def trial_count(run: h5py.Group) -> int:
    """Complete trials: a writer killed inside an append may leave one dataset a row longer."""
    return min(run[name].shape[0] for name in PER_TRIAL)
