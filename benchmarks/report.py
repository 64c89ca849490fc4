"""A study's results as the paper's tables (I-III) and learning curves (Figs. 5-8).

For each transfer scenario: the baseline at the target and every method from the source,
each over the seeds that have finished. Trials to converge and speed-up follow the
first-crossing rule that `convergence.py` states and computes; the best policy of each run is played again and scored on
the reward split and on the test split. Writes <out>/results.md, <out>/results.csv and one
<out>/curves-<scenario>.png per transfer; scores are cached in <out>/scores.json, so a
report of a study in progress costs only its new runs.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from prune_gym.agents.loop import make_env
from prune_gym.benchmarks.baseline_search import scored
from prune_gym.benchmarks.convergence import converged_accuracy, first_reach, plot_methods, smoothed_mean
from prune_gym.benchmarks.study import SOURCE_RUN, Job, Study, history_of, job_status
from prune_gym.history import HistoryStore, Run

FIRST_TRIALS = 30  # the assistant's phase: issue 7 compares methods on these
COLUMNS = ("scenario", "source", "method", "seeds", "trials_to_converge", "speed_up", "first_30_accuracy",
           "best_reward_accuracy", "best_test_accuracy", "macs_ratio", "wall_minutes")


@dataclass
class Row:
    scenario: str
    source: str
    method: str
    seeds: str  # finished / asked
    trials_to_converge: int | None  # None: never within the budget
    speed_up: float | None
    first_30_accuracy: float
    best_reward_accuracy: float
    best_test_accuracy: float
    macs_ratio: float
    wall_minutes: float


def finished_runs(out: Path, jobs: list[Job]) -> dict[str, Run]:
    """The jobs' runs that have finished, by job key."""
    runs = {}
    for job in jobs:
        path = history_of(out, job)
        if job_status(path)[0] == "finished":
            with HistoryStore(path) as store:
                runs[job.key] = store.read_run(SOURCE_RUN)
    return runs


class Scores:
    """(reward, test, MACs) of each run's best policy, played again; cached by job key and run start in a JSON file."""

    def __init__(self, path: Path, env_settings: dict[str, Any]):
        self.path = path
        self.cache = json.loads(path.read_text()) if path.exists() else {}
        self.env_settings = env_settings
        self.envs: dict[tuple[str, float], gym.Env] = {}

    def __call__(self, job: Job, run: Run, dataset: str) -> tuple[float, float, float]:
        key = f"{job.key} {run.info.start_time}"
        if key not in self.cache:
            env = self.envs.get((job.model, job.ratio))
            if env is None:
                env = self.envs[job.model, job.ratio] = make_env(job.config(dataset, **self.env_settings))
            self.cache[key] = list(scored(env, run.final_policy.tolist()))
            self.path.write_text(json.dumps(self.cache, indent=1))
        return tuple(self.cache[key])


def scenario_rows(study: Study, out: Path, target: tuple[str, float], sources: dict[str, list[Job]],
                  scores: Scores) -> tuple[list[Row], dict[str, list[np.ndarray]], float | None]:
    """Rows for the baseline at `target` and each method of `sources` (method -> jobs); curves; baseline A*."""
    baseline_jobs = study.baseline_jobs(*target)
    groups = {"baseline": baseline_jobs, **sources}
    runs = {method: finished_runs(out, jobs) for method, jobs in groups.items()}
    curves = {method: [r.accuracies for r in found.values()] for method, found in runs.items() if found}
    smoothed = {method: smoothed_mean(seeds) for method, seeds in curves.items()}
    goal = converged_accuracy(smoothed["baseline"]) if "baseline" in smoothed else None
    reached = {method: first_reach(curve, goal) if goal is not None else None for method, curve in smoothed.items()}
    baseline_trials = reached.get("baseline")
    rows = []
    for method, jobs in groups.items():
        found = runs[method]
        if not found:
            continue
        trials = reached[method]
        best = np.mean([scores(job, found[job.key], study.dataset) for job in jobs if job.key in found], axis=0)
        source = jobs[0].source
        rows.append(Row(f"{target[0]} {target[1]}", f"{source.model} {source.ratio}" if source else "-", method,
                        f"{len(found)}/{len(jobs)}", trials,
                        baseline_trials / trials if trials and baseline_trials else None,
                        float(np.mean([r.accuracies[:FIRST_TRIALS].mean() for r in found.values()])),
                        float(best[0]), float(best[1]), float(best[2]),
                        float(np.mean([r.wall_times.sum() for r in found.values()])) / 60))
    return rows, curves, goal


def write_report(study: Study, out: str | Path, device: str = "auto", checkpoint: str | None = None,
                 data_root: str | None = None, env_kwargs: dict[str, Any] | None = None) -> str:
    """Write results.md, results.csv and the curves; return the Markdown."""
    out = Path(out)
    scores = Scores(out / "scores.json", {"device": device, "checkpoint": checkpoint, "data_root": data_root,
                                          "env_kwargs": env_kwargs or {}})
    rows: list[Row] = []
    plots = []
    for transfer in study.transfers:
        target = (transfer.target_model, transfer.target_ratio)
        sources = {method: study.transfer_jobs(transfer, method) for method in study.methods}
        scenario, curves, goal = scenario_rows(study, out, target, sources, scores)
        rows += scenario
        if goal is not None and len(curves) > 1:
            plot = out / f"curves-{_slug(transfer.name)}.png"
            plot_methods(curves, goal, f"{transfer.name} ({study.dataset})", plot)
            plots.append(plot)
    targets = [(t.target_model, t.target_ratio) for t in study.transfers]
    for target in (t for t in study.baselines if t not in targets):
        rows += scenario_rows(study, out, target, {}, scores)[0]
    _write_csv(rows, out / "results.csv")
    markdown = _markdown(study, rows, plots, out)
    (out / "results.md").write_text(markdown)
    return markdown


def _markdown(study: Study, rows: list[Row], plots: list[Path], out: Path) -> str:
    lines = [f"{study.dataset}, {study.trials} trials per search, seeds {', '.join(map(str, study.seeds))}. "
             f"Trials to converge: the seeds' EMA-smoothed mean reaches the baseline's A* - 0.5 pp "
             f"(the first trial that does; `benchmarks/convergence.py`); 'never' if not within the budget.", "",
             "| scenario | source | method | seeds | trials to converge | speed-up | first 30 trials: mean accuracy "
             "| best policy: reward / test accuracy | MACs | search wall (min) |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        trials = "never" if r.trials_to_converge is None else str(r.trials_to_converge)
        speed = "-" if r.speed_up is None else f"{r.speed_up:.2f}x"
        lines.append(f"| {r.scenario} | {r.source} | {r.method} | {r.seeds} | {trials} | {speed} | "
                     f"{100 * r.first_30_accuracy:.2f}% | {100 * r.best_reward_accuracy:.2f}% / "
                     f"{100 * r.best_test_accuracy:.2f}% | {r.macs_ratio:.3f} | {r.wall_minutes:.1f} |")
    lines += ["", *[f"![{p.stem}]({p.relative_to(out)})" for p in plots]]
    return "\n".join(lines) + "\n"


def _write_csv(rows: list[Row], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for row in rows:
            writer.writerow([getattr(row, column) for column in COLUMNS])


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-")
