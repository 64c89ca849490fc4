"""The league: searchers measured on the standard tasks as a user measures them, by the best model held after T trials.

Its committed entries are the searches behind benchmarks/RESULTS.md: every searcher of
prune-gym from scratch, 300 trials with its default settings, 5 seeds or more, on each task
(`prune_gym.tasks`); the history library that ships holds their trials. A new entry is a
searcher of anyone's, run by `prune-gym league` on the same tasks and seeds: its trials go
into one data file (`write_entry`), and `standings` sets every entry side by side:
* b(T), the mean over seeds of the best reward-split accuracy among the first T trials, at
  T = 10, 30, 100 and 300, with a 90% bootstrap interval over seeds;
* T_q, the trials to the AMC-style baseline's quality (its mean b(300), less 0.5 pp);
* the normalised score (b - random) / (best known - random) at the last T: 0 is random
  policies around p, 1 the best policy any search of the library found on the task.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prune_gym.benchmarks.data_export import read_csv_gz, write_csv_gz
from prune_gym.benchmarks.quality import BUDGETS, best_so_far_at, common_length, quality, time_to_quality
from prune_gym.errors import PruneGymError
from prune_gym.history import HistoryStore, Run
from prune_gym.history.library import library_path
from prune_gym.tasks import SURROGATES, TASKS, Task

LEAGUE_STUDIES = ("league", "league-models")  # the library's studies whose searches from scratch make the league
BASELINE, RANDOM = "amc-ddpg", "random"  # the searcher T_q races to, and the score's zero
ENTRY_COLUMNS = ("task", "entry", "seed", "trial", "accuracy", "macs_ratio", "seconds", "policy")

Curves = dict[str, list[np.ndarray]]  # each entry's per-seed reward-split accuracies, trial 0 first


@dataclass(frozen=True)
class Standing:
    """An entry's row: its seeds, b(T) with intervals by T, trials to the baseline's quality, and its score."""

    entry: str
    seeds: int
    best_so_far: dict[int, tuple[float, tuple[float, float]]]
    trials_to_quality: int | None
    score: float | None


@dataclass(frozen=True)
class Reference:
    """What a task's league holds: its entries' curves (searches from scratch) and the best accuracy known."""

    curves: Curves
    best_known: float


def league_reference(task: Task, library: Path | None = None) -> Reference:
    """The league's searches of `task` that the history library holds, by searcher, and the best accuracy any
    of its runs of the task found (on the shipped weights)."""
    with HistoryStore(library or library_path(), "r") as store:
        infos = store.find_runs(task.model, task.dataset, task.ratio, status="finished")
        curves: Curves = {}
        for info in infos:
            if info.settings.get("study") in LEAGUE_STUDIES and info.method == "baseline":
                curves.setdefault(info.settings["agent"], []).append(store.read_run(info.run_id).accuracies)
    if not curves:
        raise PruneGymError(f"the history library holds no league search of {task.env_id}")
    return Reference(dict(sorted(curves.items())), max(float(i.best_accuracy) for i in infos))


def standings(reference: Reference, entries: Curves | None = None, budgets: Sequence[int] = BUDGETS
              ) -> list[Standing]:
    """Every entry of the league and of `entries` (yours, which may have fewer trials), best b(T) first at
    the largest T all of them reach; T beyond an entry's trials is left out of its row."""
    everyone = {**reference.curves, **(entries or {})}
    target = quality(reference.curves[BASELINE]) if BASELINE in reference.curves else None
    floor = reference.curves.get(RANDOM)
    rows = []
    for name, curves in everyone.items():
        n = common_length(curves)
        held = {t: best_so_far_at(curves, t) for t in budgets if t <= n}
        last = max(held) if held else None
        score = None
        if last is not None and floor is not None and common_length(floor) >= last:
            zero = best_so_far_at(floor, last)[0]
            score = (held[last][0] - zero) / (reference.best_known - zero) if reference.best_known > zero else None
        reach = time_to_quality(curves, target) if target is not None else None
        rows.append(Standing(name, len(curves), held, reach, score))
    shared = min((max(r.best_so_far, default=0) for r in rows), default=0)
    return sorted(rows, key=lambda r: -r.best_so_far[shared][0] if shared in r.best_so_far else 0.0)


def format_standings(task: Task, reference: Reference, rows: Sequence[Standing], budgets: Sequence[int] = BUDGETS,
                     mine: Iterable[str] = ()) -> str:
    """The standings as a Markdown table, the entries named in `mine` marked."""
    mine = set(mine)
    target = quality(reference.curves[BASELINE]) if BASELINE in reference.curves else None
    head = (f"{task.env_id} ({task.label}): best known {100 * reference.best_known:.2f}%"
            + (f"; the baseline's quality {100 * target:.2f}% ({BASELINE}'s mean b(300))" if target else ""))
    lines = [head, "", "| searcher | seeds | " + " | ".join(f"b({t})" for t in budgets)
             + " | trials to the baseline's quality | score |", "|---|---|" + "---|" * (len(budgets) + 2)]
    for row in rows:
        cells = [f"{100 * row.best_so_far[t][0]:.2f} [{100 * row.best_so_far[t][1][0]:.2f}, "
                 f"{100 * row.best_so_far[t][1][1]:.2f}]" if t in row.best_so_far else "-" for t in budgets]
        reach = "-" if row.trials_to_quality is None else str(row.trials_to_quality)
        score = "-" if row.score is None else f"{row.score:.2f}"
        name = f"**{row.entry}** (yours)" if row.entry in mine else row.entry
        lines.append(f"| {name} | {row.seeds} | " + " | ".join(cells) + f" | {reach} | {score} |")
    return "\n".join(lines)


def write_entry(path: Path, entry: str, runs: Mapping[tuple[str, int], Run]) -> None:
    """An entry's data file: every trial of its runs, by (task id, seed), one row each, gzipped CSV (the same rows
    give the same bytes)."""
    write_entries(path, {entry: runs})


def write_entries(path: Path, entries: Mapping[str, Mapping[tuple[str, int], Run]]) -> None:
    """Several entries' runs, by entry name, in one data file as `write_entry` writes one's."""
    rows = [[task_id, entry, seed, t, f"{run.accuracies[t]:.6f}", f"{run.macs_ratios[t]:.6f}", f"{run.wall_times[t]:.3f}",
             " ".join(f"{a:.6f}" for a in run.actions[t])]
            for entry, runs in sorted(entries.items())
            for (task_id, seed), run in sorted(runs.items()) for t in range(run.n_trials)]
    path.parent.mkdir(parents=True, exist_ok=True)
    write_csv_gz(path, ENTRY_COLUMNS, rows)


def read_entries(paths: Iterable[Path]) -> dict[str, Curves]:
    """The entries' curves in data files `write_entry` wrote, by task id (a surrogate's too), then entry."""
    found: dict[str, dict[str, dict[int, list[float]]]] = {}
    for path in paths:
        try:
            for row in read_csv_gz(path):
                if row["task"] not in TASKS and row["task"] not in SURROGATES:
                    raise PruneGymError(f"{path}: unknown task {row['task']!r}")
                seeds = found.setdefault(row["task"], {}).setdefault(row["entry"], {})
                seeds.setdefault(int(row["seed"]), []).append(float(row["accuracy"]))
        except (OSError, KeyError, ValueError, EOFError) as exc:
            raise PruneGymError(f"{path} is not a league entry's data file: {exc}") from None
    return {task_id: {entry: [np.array(seeds[s]) for s in sorted(seeds)] for entry, seeds in entries.items()}
            for task_id, entries in found.items()}
