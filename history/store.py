"""The history store: past pruning runs in one HDF5 file (the layout is in README.md here).

A store opened with mode "a" is the file's only writer: it holds the writer lock for its
whole life, keeps the HDF5 file open, and flushes after every change under the exclusive
transaction lock (see locks.py). So whatever a call has returned is in the file, safe from
a killed process (not from a power cut: nothing is fsync'ed). A store opened with mode "r"
opens the file for the length of each call only, under the shared transaction lock, so it
never sees half an append and always sees the latest one.
"""

from __future__ import annotations

import json
import os
import platform
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

import h5py
import numpy as np

from prune_gym.history.checksums import SEALED_RUN_DATASETS, seal, verify
from prune_gym.history.errors import HistoryError
from prune_gym.history.locks import WriterLock, transaction, writer_alive
from prune_gym.history.records import Run, RunInfo, Scenario, Weights
from prune_gym.history.schema import (
    FORMAT,
    OBSERVATION_CHUNK,
    ORIGIN_MAX_LEN,
    PER_TRIAL,
    ROW_CHUNK,
    SCHEMA_VERSION,
    TRIAL_DTYPE,
    check_schema,
    trial_count,
)

_DISTRIBUTIONS = ("prune-gym", "numpy", "h5py", "torch", "gymnasium", "stable-baselines3")


class HistoryStore:
    """One history file. Use as a context manager, or call `close()`.

    mode "r" reads; mode "a" also writes, creating the file if it does not exist, and waits
    up to `timeout` seconds for another writer (or a reader holding the file) before failing.
    """

    def __init__(self, path: str | os.PathLike[str], mode: Literal["r", "a"] = "r", *, timeout: float = 10.0):
        if mode not in ("r", "a"):
            raise ValueError(f"mode must be 'r' or 'a', not {mode!r}")
        self.path = Path(path)
        self.mode = mode
        self.timeout = timeout
        self._h5: h5py.File | None = None
        self._txn_fd = -1
        self._writers: dict[str, RunWriter] = {}
        self._resources = ExitStack()
        self._closed = False
        if mode == "a":
            self._open_for_writing()
        else:
            with self._reading():
                pass  # a missing or foreign file fails here, not at the first query

    # -- opening and closing -------------------------------------------------------------

    def _open_for_writing(self) -> None:
        with ExitStack() as resources:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock = WriterLock(self.path, self.timeout)
            resources.callback(lock.release)
            if not self.path.exists():
                _create(self.path)
            self._h5 = resources.enter_context(_open_h5(self.path, "r+"))
            self._txn_fd = os.open(self.path, os.O_RDONLY)
            resources.callback(os.close, self._txn_fd)
            self._mark_orphans_interrupted()
            self._resources = resources.pop_all()

    def _mark_orphans_interrupted(self) -> None:
        """Runs left 'running' belong to dead writers: we hold the writer lock now."""
        runs = self._h5["runs"]
        orphans = [name for name in runs if runs[name].attrs["status"] == "running"]
        if orphans:
            with self._transaction() as f:
                for name in orphans:
                    f["runs"][name].attrs["status"] = "interrupted"

    def close(self) -> None:
        """Stop writing: runs still open here are marked interrupted (resumable)."""
        if self._closed:
            return
        for writer in list(self._writers.values()):
            writer.close()
        self._resources.close()
        self._closed = True

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- locking -------------------------------------------------------------------------

    @contextmanager
    def _reading(self) -> Iterator[tuple[h5py.File, bool]]:
        """The open file, and whether no writer is alive (so 'running' runs were interrupted)."""
        if self._closed:
            raise HistoryError(f"the store for {self.path} is closed")
        if self._h5 is not None:
            yield self._h5, False  # our own handle, flushed after every change
            return
        if not self.path.exists():
            raise HistoryError(f"no history file at {self.path}")
        fd = os.open(self.path, os.O_RDONLY)
        try:
            with transaction(fd, self.path, exclusive=False, timeout=self.timeout), _open_h5(self.path, "r") as f:
                # Under the shared lock no writer can add a run, so this verdict covers all we read.
                writer_gone = not writer_alive(self.path)
                try:
                    yield f, writer_gone
                except OSError as exc:
                    raise HistoryError(f"cannot read {self.path} (damaged?): {exc}") from exc
        finally:
            os.close(fd)

    @contextmanager
    def _transaction(self) -> Iterator[h5py.File]:
        """Exclusive against readers; the file is flushed before they may look again."""
        if self._closed:
            raise HistoryError(f"the store for {self.path} is closed")
        if self._h5 is None:
            raise HistoryError(f"{self.path} is open read-only; open HistoryStore(path, 'a') to write")
        with transaction(self._txn_fd, self.path, exclusive=True, timeout=self.timeout):
            yield self._h5
            self._h5.flush()

    # -- writing -------------------------------------------------------------------------

    def start_run(
        self,
        scenario: Scenario,
        method: str,
        settings: Mapping[str, Any],
        seed: int,
        sources: Sequence[str] = (),
    ) -> RunWriter:
        """Create a run (id "run-NNNN", unique in the file) and return its writer."""
        settings_json = json.dumps(dict(settings), sort_keys=True)  # fails on non-JSON values before writing
        with self._transaction() as f:
            run_id = _next_run_id(f["runs"])
            run = f["runs"].create_group(run_id)
            run.attrs.update(
                {
                    "model": scenario.model,
                    "dataset": scenario.dataset,
                    "checkpoint_digest": scenario.checkpoint_digest,
                    "target_ratio": float(scenario.target_ratio),
                    "reward": scenario.reward,
                    "method": method,
                    "settings": settings_json,
                    "seed": int(seed),
                    "sources": json.dumps(list(sources)),
                    "versions": json.dumps(software_versions(), sort_keys=True),
                    "start_time": _now(),
                    "end_time": "",
                    "resume_times": "[]",
                    "status": "running",
                }
            )
            seal(run.create_dataset("unit_names", data=scenario.unit_names, dtype=h5py.string_dtype()))
            seal(run.create_dataset("feature_names", data=scenario.feature_names, dtype=h5py.string_dtype()))
            seal(run.create_dataset("unit_features", data=scenario.unit_features))
            units, features = scenario.n_units, scenario.n_features
            for name, row_shape, dtype, chunk in (
                ("observations", (units, features), np.float32, OBSERVATION_CHUNK),
                ("actions", (units,), np.float32, ROW_CHUNK),
                ("trials", (), TRIAL_DTYPE, ROW_CHUNK),
            ):
                run.create_dataset(
                    name, shape=(0, *row_shape), maxshape=(None, *row_shape), dtype=dtype, chunks=(chunk, *row_shape)
                )
            run.create_group("weights", track_order=True)
        return self._writer(run_id, 0)

    def resume_run(self, run_id: str) -> RunWriter:
        """Continue an interrupted run; its next trial takes the next number."""
        if run_id in self._writers:
            raise HistoryError(f"run {run_id!r} is already being written by this store")
        with self._transaction() as f:
            run = _run_group(f, run_id, self.path)
            status = run.attrs["status"]
            if status != "interrupted":
                raise HistoryError(f"run {run_id!r} in {self.path} is {status}; only an interrupted run can be resumed")
            n_trials = trial_count(run)
            for name in PER_TRIAL:
                run[name].resize(n_trials, axis=0)  # drop a half-appended trial
            run.attrs["status"] = "running"
            run.attrs["resume_times"] = json.dumps([*json.loads(run.attrs["resume_times"]), _now()])
        return self._writer(run_id, n_trials)

    def import_run(self, path: str | os.PathLike[str], run_id: str) -> str:
        """Copy run `run_id` of another history file into this one, under this file's next id.

        Searches that run side by side each write a file of their own (a file has one
        writer); this merges a finished one into the library afterwards.
        """
        return self.import_runs(path, [run_id])[0]

    def import_runs(self, path: str | os.PathLike[str], run_ids: Sequence[str]) -> list[str]:
        """`import_run` for each of `run_ids`, in order, the other file read once; their new ids."""
        other = HistoryStore(path)
        status = {r.run_id: r.status for r in other.find_runs()}
        for run_id in run_ids:
            if status.get(run_id) != "finished":
                raise HistoryError(f"run {run_id!r} in {path} is {status.get(run_id, 'missing')}; only a finished "
                                   f"run can be imported")
        new_ids = []
        with other._reading() as (source, _), self._transaction() as f:
            for run_id in run_ids:
                new_ids.append(_next_run_id(f["runs"]))
                f.copy(source["runs"][run_id], f["runs"], name=new_ids[-1])
        return new_ids

    def _writer(self, run_id: str, n_trials: int) -> RunWriter:
        writer = RunWriter(self, self._h5["runs"][run_id], n_trials)
        self._writers[run_id] = writer
        return writer

    # -- reading -------------------------------------------------------------------------

    def find_runs(
        self,
        model: str | None = None,
        dataset: str | None = None,
        target_ratio: float | None = None,
        method: str | None = None,
        status: str | None = None,
    ) -> list[RunInfo]:
        """Runs matching every filter given, in run id order."""
        with self._reading() as (f, writer_gone):
            infos = [_run_info(f["runs"][name], writer_gone) for name in sorted(f["runs"])]
        return [
            info
            for info in infos
            if model in (None, info.scenario.model)
            and dataset in (None, info.scenario.dataset)
            and (target_ratio is None or abs(info.scenario.target_ratio - target_ratio) < 1e-9)
            and method in (None, info.method)
            and status in (None, info.status)
        ]

    def run_info(self, run_id: str) -> RunInfo | None:
        """One run's metadata, without reading the others' (None if the file has no such run)."""
        with self._reading() as (f, writer_gone):
            return _run_info(f["runs"][run_id], writer_gone) if run_id in f["runs"] else None

    def read_run(self, run_id: str) -> Run:
        """A run's metadata and all its complete trials."""
        with self._reading() as (f, writer_gone):
            run = _run_group(f, run_id, self.path)
            for name in SEALED_RUN_DATASETS:
                if name in run:
                    verify(run[name], self.path)
            info = _run_info(run, writer_gone)
            n = info.n_trials
            trials = run["trials"][:n]
            return Run(
                info=info,
                observations=run["observations"][:n],
                actions=run["actions"][:n],
                rewards=trials["reward"],
                accuracies=trials["accuracy"],
                macs_ratios=trials["macs_ratio"],
                wall_times=trials["wall_time"],
                origins=trials["origin"].astype(str),
                admitted=trials["admitted"],
                final_policy=run["best_policy"][:] if "best_policy" in run else None,
            )

    def annotate(self, run_id: str, key: str, value: Any) -> None:
        """Add what was learned about a run after it was recorded (a fine-tune of its best policy, say) to
        its notes, a JSON object under `key`; a note of the same key is replaced."""
        with self._transaction() as f:
            run = _run_group(f, run_id, self.path)
            run.attrs["notes"] = json.dumps({**json.loads(run.attrs.get("notes", "{}")), key: value})

    def load_weights(self, run_id: str, tag: str = "final") -> Weights:
        """The state dicts saved under `tag`, by part ("actor", "critic", ...), as numpy arrays."""
        with self._reading() as (f, _):
            weights = _run_group(f, run_id, self.path)["weights"]
            if tag not in weights:
                raise HistoryError(f"run {run_id!r} in {self.path} has no weights tagged {tag!r} "
                                   f"(has: {', '.join(weights) or 'none'})")
            saved = weights[tag]
            for group in saved.values():
                for ds in group.values():
                    verify(ds, self.path)
            return {part: {name: ds[()] for name, ds in group.items()} for part, group in saved.items()}


class RunWriter:
    """Appends one run's trials and weights; got from `start_run` or `resume_run`.

    Leaving its `with` block (or calling `close()`) without `finish()` marks the run
    interrupted, so that it can be resumed.
    """

    def __init__(self, store: HistoryStore, run: h5py.Group, n_trials: int):
        self._store = store
        self._run = run
        self.run_id: str = run.name.rsplit("/", 1)[-1]
        self.n_trials = n_trials
        self._units, self._features = run["unit_features"].shape
        self._observations, self._actions, self._trials = (run[name] for name in PER_TRIAL)
        self._open = True

    def append_trial(
        self,
        observations: np.ndarray,
        actions: np.ndarray,
        reward: float,
        accuracy: float,
        macs_ratio: float,
        origin: str,
        wall_time: float,
        admitted: bool = True,
    ) -> int:
        """Record one trial (durably, before returning) and return its number, from 0.

        origin: where the actions came from ('warmup', 'actor', 'assistant', ...);
        wall_time: the seconds the trial took; admitted: whether it entered the replay buffer.
        """
        obs = np.asarray(observations, dtype=np.float32)
        if obs.shape != (self._units, self._features):
            raise ValueError(f"observations have shape {obs.shape}, expected {(self._units, self._features)}")
        acts = self._policy(actions, "actions")
        if not (origin.isascii() and 0 < len(origin) <= ORIGIN_MAX_LEN):
            raise ValueError(f"origin must be 1 to {ORIGIN_MAX_LEN} ASCII characters, got {origin!r}")
        row = np.array((reward, accuracy, macs_ratio, wall_time, origin.encode(), admitted), dtype=TRIAL_DTYPE)
        self._check_open()
        trial = self.n_trials
        with self._store._transaction():
            for dataset, value in ((self._observations, obs), (self._actions, acts), (self._trials, row)):
                dataset.resize(trial + 1, axis=0)
                dataset[trial] = value
        self.n_trials = trial + 1
        return trial

    def save_weights(self, tag: str, parts: Mapping[str, Mapping[str, Any]]) -> None:
        """Save the searcher's named state dicts (tensors or arrays) under a new tag, e.g. 'trial-100', 'final'.

        parts: e.g. {"actor": actor.state_dict(), "critic": critic.state_dict()}.
        """
        if not tag or "/" in tag:
            raise ValueError(f"a weights tag must be non-empty and free of '/', got {tag!r}")
        if not parts or any(not part or "/" in part for part in parts):
            raise ValueError(f"weights need at least one part, each named without '/', got {list(parts)}")
        arrays = {part: _as_numpy(state) for part, state in parts.items()}
        self._check_open()
        with self._store._transaction():
            weights = self._run["weights"]
            if tag in weights:
                raise HistoryError(f"run {self.run_id!r} already has weights tagged {tag!r}; "
                                   "tags are never overwritten")
            saved = weights.create_group(tag, track_order=True)
            saved.attrs.update({"trial": self.n_trials, "time": _now()})
            for part, state in arrays.items():
                group = saved.create_group(part, track_order=True)
                for name, value in state.items():
                    seal(group.create_dataset(name, data=value))

    def finish(self, best_policy: np.ndarray | None = None) -> None:
        """Mark the run finished, recording `best_policy` or else the best-accuracy trial's actions."""
        self._check_open()
        if best_policy is not None:
            policy, best_trial = self._policy(best_policy, "best_policy"), -1
        elif self.n_trials:
            best_trial = int(np.argmax(self._trials.fields("accuracy")[: self.n_trials]))
            policy = self._actions[best_trial]
        else:
            raise HistoryError(f"run {self.run_id!r} has no trials; pass best_policy to finish it")
        with self._store._transaction():
            seal(self._run.create_dataset("best_policy", data=policy))
            self._run.attrs.update({"best_trial": best_trial, "status": "finished", "end_time": _now()})
        self._detach()

    def close(self) -> None:
        """Stop writing; an unfinished run is marked interrupted."""
        if self._open:
            with self._store._transaction():
                self._run.attrs["status"] = "interrupted"
            self._detach()

    def __enter__(self) -> RunWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _policy(self, values: Any, what: str) -> np.ndarray:
        policy = np.asarray(values, dtype=np.float32)
        if policy.shape != (self._units,):
            raise ValueError(f"{what} have shape {policy.shape}, expected ({self._units},): one per unit")
        return policy

    def _check_open(self) -> None:
        if not self._open:
            raise HistoryError(f"run {self.run_id!r} is no longer open for writing (finished or closed)")

    def _detach(self) -> None:
        self._open = False
        del self._store._writers[self.run_id]


def software_versions() -> dict[str, str]:
    """Python, HDF5 and the installed distributions a run's results may depend on."""
    versions = {"python": platform.python_version(), "hdf5": h5py.version.hdf5_version}
    for distribution in _DISTRIBUTIONS:
        try:
            versions[distribution] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue  # optional ones (gymnasium, stable-baselines3) are recorded when installed
    return versions


def _create(path: Path) -> None:
    """Write an empty history beside `path`, then link it into place: readers never see it
    half-made, and a file that appeared meanwhile is never replaced."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    with h5py.File(partial, "w", locking=False) as f:
        f.attrs.update({"format": FORMAT, "schema_version": SCHEMA_VERSION})
        f.create_group("runs")
    try:
        os.link(partial, path)
    finally:
        partial.unlink()


def _open_h5(path: Path, mode: str) -> h5py.File:
    if not path.exists():
        raise HistoryError(f"no history file at {path}")
    if not h5py.is_hdf5(path):
        raise HistoryError(f"{path} is not an HDF5 file, so not a prune-gym history; leaving it untouched")
    try:
        f = h5py.File(path, mode, locking=False)
    except OSError as exc:
        raise HistoryError(f"cannot open history file {path} (truncated or damaged?): {exc}") from exc
    try:
        check_schema(f, path)
    except HistoryError:
        f.close()
        raise
    return f


def _run_group(f: h5py.File, run_id: str, path: Path) -> h5py.Group:
    if run_id not in f["runs"]:
        raise HistoryError(f"no run {run_id!r} in {path}")
    return f["runs"][run_id]


def _run_info(run: h5py.Group, writer_gone: bool) -> RunInfo:
    attrs = run.attrs
    n_trials = trial_count(run)
    status = attrs["status"]
    return RunInfo(
        run_id=run.name.rsplit("/", 1)[-1],
        scenario=Scenario(
            model=attrs["model"],
            dataset=attrs["dataset"],
            checkpoint_digest=attrs["checkpoint_digest"],
            target_ratio=float(attrs["target_ratio"]),
            reward=attrs["reward"],
            unit_names=list(run["unit_names"].asstr()[()]),
            feature_names=list(run["feature_names"].asstr()[()]),
            unit_features=run["unit_features"][()],
        ),
        method=attrs["method"],
        settings=json.loads(attrs["settings"]),
        seed=int(attrs["seed"]),
        sources=json.loads(attrs["sources"]),
        versions=json.loads(attrs["versions"]),
        start_time=attrs["start_time"],
        end_time=attrs["end_time"] or None,
        resume_times=json.loads(attrs["resume_times"]),
        status="interrupted" if status == "running" and writer_gone else status,
        n_trials=n_trials,
        best_accuracy=float(run["trials"].fields("accuracy")[:n_trials].max()) if n_trials else None,
        weight_tags=list(run["weights"]),
        notes=json.loads(attrs.get("notes", "{}")),
    )


def _next_run_id(runs: h5py.Group) -> str:
    numbers = [int(match.group(1)) for name in runs if (match := re.fullmatch(r"run-(\d+)", name))]
    return f"run-{max(numbers, default=0) + 1:04d}"


def _as_numpy(state: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """A state dict's tensors (on any device) or arrays as numpy arrays, names checked."""
    arrays = {}
    for name, value in state.items():
        if not name or "/" in name:
            raise ValueError(f"a parameter name must be non-empty and free of '/', got {name!r}")
        arrays[name] = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value)
    return arrays


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
