"""`prune-gym history check`: read every run of a history file and name what is damaged.

Each run's metadata must parse, its per-trial datasets must read whole, and every
write-once dataset (the unit table, the best policy, each weights parameter) must match
its checksum (`checksums.py`). Damage that HDF5 itself trips over (a broken index or
header) is reported where it is met, with HDF5's message.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import h5py

from prune_gym.history.checksums import SEALED_RUN_DATASETS, is_sealed, verify
from prune_gym.history.errors import HistoryError
from prune_gym.history.schema import PER_TRIAL
from prune_gym.history.store import HistoryStore

JSON_ATTRS = ("settings", "sources", "versions", "resume_times")


@dataclass
class Damage:
    run: str  # "" for the file itself
    dataset: str  # the dataset's or group's path in the file, or what failed
    problem: str


@dataclass
class CheckReport:
    path: Path
    runs: int = 0
    damage: list[Damage] = field(default_factory=list)
    unverified: int = 0  # write-once datasets stored before checksums existed

    @property
    def damaged(self) -> bool:
        return bool(self.damage)

    def damaged_datasets(self) -> set[str]:
        return {d.dataset for d in self.damage}

    def lines(self) -> list[str]:
        if not self.damaged:
            note = f"; {self.unverified} datasets stored without checksums, unverified" if self.unverified else ""
            return [f"{self.path}: {self.runs} runs, every dataset reads and matches its checksum{note}"]
        runs = sorted({d.run for d in self.damage if d.run})
        lines = [f"{self.path}: DAMAGED: {len(self.damage)} problems in {len(runs)} of {self.runs} runs"
                 + (" and the file itself" if any(not d.run for d in self.damage) else "")]
        lines += [f"  {d.run or 'file'}: {d.dataset}: {d.problem}" for d in self.damage]
        return lines


def check_file(path: str | Path) -> CheckReport:
    """Verify a whole history file; never raises for damage, reports it."""
    report = CheckReport(Path(path))
    try:
        store = HistoryStore(path)
        with store._reading() as (f, _):
            names = list(f["runs"])
            report.runs = len(names)
            for name in names:
                _check_run(f, name, report)
    except (HistoryError, OSError, KeyError, RuntimeError, ValueError) as exc:
        report.damage.append(Damage("", "file", str(exc)))
    return report


def _check_run(f: h5py.File, name: str, report: CheckReport) -> None:
    def attempt(what: str, check: Callable[[], None]) -> None:
        try:
            check()
        except Exception as exc:  # a damaged HDF5 structure fails in many ways; each is a finding
            report.damage.append(Damage(name, what, _problem(exc)))

    def read_attrs() -> None:
        attrs = dict(f["runs"][name].attrs)
        for key in JSON_ATTRS:
            json.loads(attrs[key])

    def sealed(dataset_path: str) -> Callable[[], None]:
        def check() -> None:
            dataset = f[dataset_path]
            if not is_sealed(dataset):
                report.unverified += 1
            verify(dataset, report.path)
        return check

    def read_whole(dataset_path: str) -> Callable[[], None]:
        return lambda: f[dataset_path][()]

    attempt(f"/runs/{name} (attributes)", read_attrs)
    run_path = f"/runs/{name}"
    for dataset in SEALED_RUN_DATASETS:
        if dataset in f[run_path]:
            attempt(f"{run_path}/{dataset}", sealed(f"{run_path}/{dataset}"))
    for dataset in PER_TRIAL:
        attempt(f"{run_path}/{dataset}", read_whole(f"{run_path}/{dataset}"))
    weights: list[str] = []
    attempt(f"{run_path}/weights", lambda: f[f"{run_path}/weights"].visititems(
        lambda key, item: weights.append(item.name) if isinstance(item, h5py.Dataset) else None))
    for dataset in weights:
        attempt(dataset, sealed(dataset))


def _problem(exc: Exception) -> str:
    if isinstance(exc, HistoryError):
        return str(exc).split(" is damaged ", 1)[-1].strip("()")
    return f"unreadable ({type(exc).__name__}: {exc})"
