"""Source selection (the paper's section IV-A): race transfers from several sources, stop the losers early.

Every candidate source starts a transfer at once, each in a process of its own (local, or
a Ray task: `prune_gym.cluster`) writing a history file of its own (a file has one
writer). Each learning curve is smoothed by a centred window of 21 trials, whose mean and
variance stand for the curve's value and spread at the window's centre. Once every
candidate has 30 trials, candidate A is significantly superior to B if at some trial x,
avg_A(x) - avg_B(x) > var_A(x) + var_B(x); B is then stopped. If no candidate is left
alone by the end of the race, the one with the best smoothed accuracy at its last trial
wins. The winner goes on to the full trial budget and its run is copied into the library,
recording its source.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from prune_gym.agents.config import SearchConfig
from prune_gym.agents.loop import resolve_search, search_to_completion
from prune_gym.agents.methods import METHODS
from prune_gym.cluster import Backend, Task, open_backend
from prune_gym.errors import PruneGymError
from prune_gym.history import HistoryStore
from prune_gym.history.errors import HistoryError

WINDOW = 21
MIN_TRIALS = 30
RACE_TRIALS = 100  # the most trials a candidate plays before the best one is kept


def window_stats(accuracies: np.ndarray, window: int = WINDOW) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of every complete centred window; entry i is centred on trial i + window // 2 + 1."""
    views = np.lib.stride_tricks.sliding_window_view(np.asarray(accuracies, dtype=np.float64), window)
    return views.mean(axis=1), views.var(axis=1)


@dataclass(frozen=True)
class Superiority:
    winner: str
    loser: str
    trial: int  # x, counted from 1
    gap: float  # avg_A(x) - avg_B(x)
    spread: float  # var_A(x) + var_B(x)

    def __str__(self) -> str:
        return (f"{self.winner} is significantly superior to {self.loser} at trial {self.trial}: "
                f"{self.gap:.4f} above it, more than the variances' sum {self.spread:.4f}")


def superiority(a: np.ndarray, b: np.ndarray, window: int = WINDOW) -> tuple[int, float, float] | None:
    """The first trial x at which curve A is significantly superior to B, with the gap and spread; or None."""
    n = min(len(a), len(b))
    if n < window:
        return None
    mean_a, var_a = window_stats(a[:n], window)
    mean_b, var_b = window_stats(b[:n], window)
    gap, spread = mean_a - mean_b, var_a + var_b
    hits = np.flatnonzero(gap > spread)
    if not hits.size:
        return None
    i = int(hits[0])
    return i + window // 2 + 1, float(gap[i]), float(spread[i])


def losers(curves: Mapping[str, np.ndarray], window: int = WINDOW,
           min_trials: int = MIN_TRIALS) -> dict[str, Superiority]:
    """The candidates stopped by another one, once every candidate has `min_trials`.

    Superiorities are applied in the order of their trial, as a race watching the curves
    grow would find them; a candidate stopped earlier stops no one after.
    """
    if not curves or min(len(c) for c in curves.values()) < max(min_trials, window):
        return {}
    events = sorted((Superiority(a, b, *hit) for a, curve_a in curves.items() for b, curve_b in curves.items()
                     if a != b and (hit := superiority(curve_a, curve_b, window)) is not None),
                    key=lambda event: event.trial)
    stopped: dict[str, Superiority] = {}
    for event in events:
        if event.winner not in stopped and event.loser not in stopped:
            stopped[event.loser] = event
    return stopped


def last_smoothed(curve: np.ndarray, window: int = WINDOW) -> float:
    """The curve's smoothed value at its last trial: the mean of the half window that ends there."""
    return float(np.mean(curve[-(window // 2 + 1):]))


@dataclass
class Selection:
    winner: str  # the source run
    run_id: str  # the winner's run, as copied into the library
    stopped: dict[str, Superiority]
    reason: str
    curves: dict[str, np.ndarray]


def select_source(config: SearchConfig, candidates: list[str], library: str | Path, race_trials: int,
                  window: int = WINDOW, min_trials: int = MIN_TRIALS, workdir: str | Path | None = None,
                  poll_seconds: float = 2.0, progress: bool = True, backend: str = "auto",
                  address: str | None = None) -> Selection:
    """Race `config` transferred from each candidate source, keep one, run it to `config.trials`.

    The race lasts at most `race_trials` trials per candidate. Candidate runs live in
    `workdir` (default: <library>.selection/), one history file each. The candidates run at
    once on `backend` (`prune_gym.cluster.open_backend`); the losers are cancelled there.
    """
    if config.resolved:
        raise PruneGymError("source selection takes the search as asked: each candidate resolves it for its source")
    if not config.method_record.transfers:
        raise PruneGymError(f"source selection races transfers: method must be one of "
                            f"{', '.join(m for m in METHODS if METHODS[m].transfers)}, or a preset of one")
    if len(set(candidates)) < 2:
        raise PruneGymError(f"source selection needs at least two different candidates, got {candidates}")
    if not max(min_trials, window) <= race_trials <= config.trials:
        raise PruneGymError(f"the race needs at least {max(min_trials, window)} trials and at most the search's "
                            f"{config.trials}, got {race_trials}")
    library = Path(library)
    with HistoryStore(library) as store:
        known = {r.run_id for r in store.find_runs(status="finished")}
    if missing := [c for c in candidates if c not in known]:
        raise PruneGymError(f"no finished run {', '.join(missing)} in {library} to transfer from")
    resolve_search(dataclasses.replace(config, source=candidates[0]), library)  # bad settings refused before the race
    workdir = Path(workdir or f"{library}.selection")
    workdir.mkdir(parents=True, exist_ok=True)
    histories = {c: workdir / f"{config.label}-p{config.ratio}-seed{config.seed}-from-{c}.h5" for c in candidates}
    for path in histories.values():
        if path.exists():
            raise PruneGymError(f"{path} exists: a race with these settings already ran; remove it to race again")
    with open_backend(backend, address, workers=len(candidates), device=config.device) as runner:
        if progress:
            print(f"source selection: the candidates run on {runner.description}")
        tasks = {c: runner.submit(search_to_completion, dataclasses.replace(config, source=c), histories[c], library)
                 for c in candidates}
        stopped, winner, reason = _race(runner, tasks, histories, race_trials, window, min_trials, poll_seconds,
                                        progress)
        runner.wait([tasks[winner]], poll_seconds)
        if tasks[winner].error is not None:
            raise PruneGymError(f"the search transferred from {winner} failed: {tasks[winner].error}")
    curves = {c: _accuracies(histories[c]) for c in candidates}
    with HistoryStore(library, "a") as store:
        run_id = store.import_run(histories[winner], "run-0001")
    return Selection(winner, run_id, stopped, reason, curves)


def _race(runner: Backend, tasks: Mapping[str, Task], histories: Mapping[str, Path], race_trials: int,
          window: int, min_trials: int, poll_seconds: float,
          progress: bool) -> tuple[dict[str, Superiority], str, str]:
    """Watch the candidates' histories; cancel the losers; return them, the winner and why it won."""
    running = dict(tasks)
    stopped: dict[str, Superiority] = {}
    bar = tqdm(total=race_trials * len(tasks), desc="source selection", unit="trial", disable=not progress)
    while True:
        runner.poll(list(running.values()))
        for name, task in running.items():
            if task.error is not None:
                raise PruneGymError(f"the search transferred from {name} failed: {task.error}")
        curves = {c: _accuracies(histories[c])[:race_trials] for c in running}
        bar.update(sum(len(c) for c in curves.values()) + race_trials * len(stopped) - bar.n)
        for loser, why in losers(curves, window, min_trials).items():
            runner.cancel(running.pop(loser))
            stopped[loser] = why
            bar.write(f"stopped {loser}: {why}")
        if len(running) == 1:
            (winner,) = running
            bar.close()
            return stopped, winner, "; ".join(str(s) for s in stopped.values())
        if all(len(c) >= race_trials for name, c in curves.items() if name in running):
            scores = {c: last_smoothed(curves[c], window) for c in running}
            winner = max(scores, key=scores.get)
            for name in list(running):
                if name != winner:
                    runner.cancel(running.pop(name))
            bar.close()
            listed = ", ".join(f"{c} {100 * s:.2f}%" for c, s in scores.items())
            return stopped, winner, (f"no candidate significantly superior after {race_trials} trials; best smoothed "
                                     f"accuracy at the last trial: {listed}")
        time.sleep(poll_seconds)


def _accuracies(history: Path) -> np.ndarray:
    """The candidate's per-trial accuracies so far (none before its process has created the run)."""
    try:
        with HistoryStore(history) as store:
            return store.read_run("run-0001").accuracies
    except (HistoryError, OSError):  # not created yet, or being created
        return np.empty(0)
