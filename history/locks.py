"""Cross-process locks: one writer per history file, and no reader sees half an append.

HDF5 itself is neither safe to read while another process writes nor crash-consistent in
the middle of a write, and its own file lock would keep every reader out for as long as a
writer holds the file open. So the store opens HDF5 with its locking off and takes two
flock(2) locks instead, which the kernel drops when the holder dies, even by SIGKILL:

* the writer lock, on the sidecar file `<history file>.lock`, held exclusively for the
  whole life of a writing store. A reader that can take it knows no writer is alive, so a
  run still marked 'running' was interrupted.
* the transaction lock, on the HDF5 file itself: exclusive around each write-and-flush,
  shared while a reader has the file open. h5py with its default locking takes the same
  shared flock, so even a plain h5py reader never opens the file half-way through an append.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from prune_gym.history.errors import HistoryError

_POLL_S = 0.005


def try_flock(fd: int, *, exclusive: bool, timeout: float) -> bool:
    """Take a flock on `fd`, retrying for up to `timeout` seconds; False if it stayed busy."""
    operation = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | fcntl.LOCK_NB
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, operation)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(_POLL_S)


def writer_lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


class WriterLock:
    """The exclusive right to write one history file, held until `release()` or death."""

    def __init__(self, path: Path, timeout: float):
        lock_path = writer_lock_path(path)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        if not try_flock(fd, exclusive=True, timeout=timeout):
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise HistoryError(
                f"{path} is being written by another process (pid {holder}); "
                f"gave up after waiting {timeout:g} s"
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def writer_alive(path: Path) -> bool:
    """Whether some process holds the writer lock of `path` right now."""
    lock_path = writer_lock_path(path)
    if not lock_path.exists():
        return False
    fd = os.open(lock_path, os.O_RDONLY)
    try:
        return not try_flock(fd, exclusive=False, timeout=0)
    finally:
        os.close(fd)  # also drops the shared lock if the probe took it


@contextmanager
def transaction(fd: int, path: Path, *, exclusive: bool, timeout: float) -> Iterator[None]:
    """Hold the transaction lock on the open HDF5 file descriptor `fd` for the block."""
    if not try_flock(fd, exclusive=exclusive, timeout=timeout):
        other = "readers" if exclusive else "a writer"
        raise HistoryError(f"{path} stayed locked by {other} for {timeout:g} s; is it held open elsewhere?")
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
