"""Transfer from a stored run against the baseline (issue 6): trials to converge (`convergence.py`).

Two source runs at `--source-ratio` (a baseline, and a baseline with the invariant actor
that augmented transfer and the assistant need), then, for every seed, a baseline, a
vanilla-transfer, an augmented-transfer and an assistant search at `--target-ratio`, all
with the same trial budget. Finished
runs in the history file are reused and interrupted ones resumed, so the script can be
re-run until done. Prints a Markdown table and writes the learning curves to `--plot`.

Feeds NOTEBOOK.md, "Transfer from a p = 0.5 run to p = 0.2, against the baseline (issue 6, first look)"
and "Assistant learning: the first 30 trials, 0.5 -> 0.2 (issue 7)".

    .venv/bin/python benchmarks/probes/transfer_search.py --source-ratio 0.5 --target-ratio 0.2 --seeds 0 1 2 \\
        --history runs/transfer.h5 --plot runs/transfer_curves.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from prune_gym.agents.config import SearchConfig
from prune_gym.agents.loop import make_env, search_to_completion
from prune_gym.benchmarks.convergence import (converged_accuracy, plot_methods, smoothed_mean,
                                              trials_to_converge)
from prune_gym.benchmarks.data_export import scored
from prune_gym.history import HistoryStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--source-ratio", type=float, default=0.5)
    parser.add_argument("--target-ratio", type=float, default=0.2)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--source-seed", type=int, default=0)
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--history", default="runs/transfer.h5")
    parser.add_argument("--plot", default="runs/transfer_curves.png")
    args = parser.parse_args()
    history = Path(args.history)

    def config(ratio: float, method: str, seed: int, **extra) -> SearchConfig:
        return SearchConfig(args.model, args.dataset, ratio, args.trials, method, seed, args.device, **extra)

    invariant_source = search_to_completion(config(args.source_ratio, "baseline", args.source_seed,
                                                   agent_kwargs={"invariant_actor": True}), history, progress=True)
    sources = {"vanilla": search_to_completion(config(args.source_ratio, "baseline", args.source_seed), history,
                                               progress=True),
               "augmented": invariant_source, "assistant": invariant_source}
    curves, results = {}, {}
    env = None
    for method in ("baseline", "vanilla", "augmented", "assistant"):
        runs = []
        for seed in args.seeds:
            target = config(args.target_ratio, method, seed, source=sources.get(method))
            run_id = search_to_completion(target, history, progress=True)
            with HistoryStore(history) as store:
                runs.append(store.read_run(run_id))
            env = env or make_env(target)
        curves[method] = [run.accuracies for run in runs]
        results[method] = (np.mean([scored(env, run.final_policy.tolist()) for run in runs], axis=0),
                           np.mean([run.wall_times.sum() for run in runs]))

    baseline_curve = smoothed_mean(curves["baseline"])
    goal = converged_accuracy(baseline_curve)
    baseline_trials = trials_to_converge(baseline_curve, goal)
    print(f"{args.model} / {args.dataset}, p = {args.source_ratio} -> {args.target_ratio}, {len(args.seeds)} seeds, "
          f"{args.trials} trials; baseline A* = {100 * goal:.2f}% (EMA 0.5, last 20% of trials)\n")
    print("| method | source | trials to A* - 0.5 pp | speed-up | first 30 trials: mean accuracy | "
          "best policy: reward / test (mean) | MACs | search wall time (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for method, seeds in curves.items():
        trials = trials_to_converge(smoothed_mean(seeds), goal)
        (reward, test, macs), wall = results[method]
        first = np.mean([seed[:30].mean() for seed in seeds])
        print(f"| {method} | {sources.get(method, '-')} | {trials} | {baseline_trials / trials:.2f}x | "
              f"{100 * first:.2f}% | {100 * reward:.2f}% / {100 * test:.2f}% | {macs:.3f} | {wall:.0f} |")
    plot_methods(curves, goal, f"{args.model}, p = {args.source_ratio} -> {args.target_ratio}", Path(args.plot))
    print(f"\nlearning curves: {args.plot}")


if __name__ == "__main__":
    main()
