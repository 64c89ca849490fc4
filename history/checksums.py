"""Digests of the write-once datasets, so that damage to stored data is found, not read.

Weights, the best policy and the unit table are written once; each carries the SHA-256 of
its contents (dtype, shape and bytes; strings as UTF-8) in the attribute `sha256`, computed
from what was written, and checked whenever it is read. The per-trial datasets grow by
appends and carry none (see schema.py for why they stay uncompressed and crash-safe).
Files written before digests existed have none: their data reads, unverified.
"""

from __future__ import annotations

import hashlib

import h5py
import numpy as np

from prune_gym.history.errors import HistoryError

DIGEST_ATTR = "sha256"
SEALED_RUN_DATASETS = ("unit_names", "feature_names", "unit_features", "best_policy")


def digest(dataset: h5py.Dataset) -> str:
    """The SHA-256 of a dataset's contents as stored."""
    h = hashlib.sha256()
    if h5py.check_string_dtype(dataset.dtype) is not None:
        h.update("\x1f".join(np.atleast_1d(dataset.asstr()[()]).tolist()).encode())
    else:
        value = np.ascontiguousarray(dataset[()])
        h.update(f"{value.dtype.str}{value.shape}".encode())
        h.update(value.tobytes())
    return h.hexdigest()


def seal(dataset: h5py.Dataset) -> None:
    """Record the digest of what was just written."""
    dataset.attrs[DIGEST_ATTR] = digest(dataset)


def is_sealed(dataset: h5py.Dataset) -> bool:
    return DIGEST_ATTR in dataset.attrs


def verify(dataset: h5py.Dataset, path: object) -> None:
    """Raise a HistoryError naming the file and dataset if its contents no longer match their digest."""
    if not is_sealed(dataset):
        return  # written before digests: nothing to check against
    try:
        ok = digest(dataset) == dataset.attrs[DIGEST_ATTR]
    except (OSError, ValueError, KeyError, UnicodeDecodeError) as exc:
        raise HistoryError(f"{path}: {dataset.name} is damaged (unreadable: {exc})") from exc
    if not ok:
        raise HistoryError(f"{path}: {dataset.name} is damaged (its contents no longer match their checksum)")
