"""How fast the history store appends and reads a long run, and how big the file gets.

Appends `--trials` trials of a `--units`-unit run one by one, as an agent would (each append
flushed before it returns), then reads the run back in a fresh read-only store. The
observations are shaped like the env's: static per-unit columns plus three that change with
the actions (MACs reduced so far, MACs left, previous action); --random-observations makes
every column random noise, the worst case for compression.

Feeds RESULTS.md, "History store at scale (issue 4)".

    .venv/bin/python benchmarks/probes/history_scale.py [--trials 10000] [--units 50] [--features 12]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from prune_gym.history import HistoryStore, Scenario


def synthetic_trials(trials: int, units: int, features: int, random_observations: bool, seed: int = 0):
    """Observations (trials, units, features) and actions (trials, units), float32."""
    rng = np.random.default_rng(seed)
    actions = rng.uniform(0.2, 1.0, size=(trials, units)).astype(np.float32)
    if random_observations:
        return rng.random((trials, units, features), dtype=np.float32), actions
    static = np.broadcast_to(rng.random((units, features - 3), dtype=np.float32), (trials, units, features - 3))
    reduced = np.cumsum(1.0 - actions, axis=1) / units
    left = 1.0 - np.arange(units, dtype=np.float32) / units
    previous = np.concatenate([np.zeros((trials, 1), np.float32), actions[:, :-1]], axis=1)
    dynamic = np.stack([reduced, np.broadcast_to(left, reduced.shape), previous], axis=2)
    return np.concatenate([static, dynamic], axis=2).astype(np.float32), actions


def measure(path: Path, trials: int, units: int, features: int, random_observations: bool = False) -> dict[str, float]:
    """Append then read back one run in a new file at `path`; returns the figures."""
    observations, actions = synthetic_trials(trials, units, features, random_observations)
    accuracies = np.linspace(0.1, 0.9, trials)
    scenario = Scenario(
        model="bench", dataset="synthetic", checkpoint_digest="0" * 64, target_ratio=0.5, reward="accuracy",
        unit_names=[f"unit{k}" for k in range(units)], feature_names=[f"f{j}" for j in range(features)],
        unit_features=observations[0],
    )
    with HistoryStore(path, "a") as store:
        writer = store.start_run(scenario, "bench", {}, seed=0)
        start = time.perf_counter()
        for t in range(trials):
            writer.append_trial(observations[t], actions[t], accuracies[t], accuracies[t], 0.5, "actor", 1.0)
        append_s = time.perf_counter() - start
        writer.finish()
    start = time.perf_counter()
    run = HistoryStore(path).read_run(writer.run_id)
    read_s = time.perf_counter() - start
    start = time.perf_counter()
    run.transitions()
    transitions_s = time.perf_counter() - start
    if not (np.array_equal(run.observations, observations) and np.array_equal(run.actions, actions)):
        raise RuntimeError(f"{path}: the trials read back differ from those appended")
    return {
        "trials": run.n_trials,
        "append_s": append_s,
        "append_ms_per_trial": 1e3 * append_s / trials,
        "file_mb": path.stat().st_size / 1e6,
        "read_s": read_s,
        "transitions_s": transitions_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--units", type=int, default=50)
    parser.add_argument("--features", type=int, default=12)
    parser.add_argument("--random-observations", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        figures = measure(Path(tmp) / "history.h5", args.trials, args.units, args.features, args.random_observations)
    kind = "random" if args.random_observations else "env-like"
    print(f"{args.trials} trials x {args.units} units x {args.features} features ({kind} observations)")
    print(f"append: {figures['append_s']:.2f} s ({figures['append_ms_per_trial']:.3f} ms/trial, flushed each)")
    print(f"file:   {figures['file_mb']:.1f} MB")
    print(f"read:   {figures['read_s'] * 1e3:.0f} ms (open + all trials), "
          f"transitions: {figures['transitions_s'] * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
