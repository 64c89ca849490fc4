"""The history library that ships with prune-gym: the benchmark studies' finished runs, one history file.

A fresh machine has no history of its own, yet a search that starts from past runs reaches a
good policy in far fewer trials. So the package carries the runs behind benchmarks/RESULTS.md
(every trial's policy, reward-split accuracy and MACs, the test accuracy of the trials that
were scored, on the committed checkpoints), gzipped, with a manifest that holds the unpacked
file's checksum. On first use the file is unpacked into the cache and verified; it is then
an ordinary history file, opened read-only (benchmarks/library_export.py builds it).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from prune_gym.history.errors import HistoryError
from prune_gym.paths import home_dir

LIBRARY_VERSION = 1  # bumped when the library's runs change
ARCHIVE = Path(__file__).parent / "library" / "library.h5.gz"
MANIFEST = ARCHIVE.with_name("library.json")


def manifest(archive: Path = ARCHIVE) -> dict:
    """The library's manifest: version, runs, trials, scenarios and the unpacked file's sha256."""
    path = archive.with_name(MANIFEST.name)
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise HistoryError(f"the history library's manifest {path} is unreadable: {exc}") from None


def library_path(archive: Path = ARCHIVE, cache: Path | None = None) -> Path:
    """The library's history file, unpacked from `archive` into `cache` (default: $PRUNE_GYM_HOME/library) on
    first use and verified against the manifest's checksum; a damaged archive raises HistoryError."""
    expected = manifest(archive)["sha256"]
    cache = cache or home_dir() / "library"
    path = cache / f"library-{expected[:16]}.h5"
    if path.exists() and sha256(path) == expected:
        return path
    cache.mkdir(parents=True, exist_ok=True)
    # Unpacked beside its place and moved there whole, so that a search started meanwhile never reads half.
    with tempfile.NamedTemporaryFile(dir=cache, suffix=".part", delete=False) as part:
        try:
            with gzip.open(archive, "rb") as packed:
                shutil.copyfileobj(packed, part)
        except (OSError, EOFError) as exc:
            os.unlink(part.name)
            raise HistoryError(f"the history library {archive} is damaged: {exc}") from None
    if sha256(Path(part.name)) != expected:
        os.unlink(part.name)
        raise HistoryError(f"the history library {archive} is damaged: its checksum differs from its manifest's")
    os.replace(part.name, path)
    return path


def sha256(path: Path) -> str:
    """The hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
