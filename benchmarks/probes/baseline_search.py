"""The AMC-style baseline against the reference policies (issue 5's acceptance).

For each ratio and seed, a `--trials`-trial baseline search; its best policy is compared,
on the reward split and on the test split, with the uniform policy and with the best of
`--random` random policies at the same ratio. Searches already finished in the history
file are reused and interrupted ones resumed, so the script can be re-run until done.
Writes a Markdown table to stdout and learning curves to `--plot`.

Feeds RESULTS.md, "The AMC-style DDPG baseline against reference policies (issue 5)".

    .venv/bin/python benchmarks/probes/baseline_search.py --ratios 0.3 0.2 --seeds 0 1 2 \\
        --history runs/baseline.h5 --plot runs/baseline_curves.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from prune_gym.agents.config import SearchConfig
from prune_gym.agents.loop import make_env, search_to_completion
from prune_gym.benchmarks.data_export import scored
from prune_gym.history import HistoryStore
from prune_gym.history.plot import plot_learning_curves
from prune_gym.policies import random_policy, uniform_policy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.3, 0.2])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--trials", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--random", type=int, default=20)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--history", default="runs/baseline.h5")
    parser.add_argument("--plot", default="runs/baseline_curves.png")
    args = parser.parse_args()
    history = Path(args.history)

    rows, run_ids = [], []
    for ratio in args.ratios:
        scores = []
        for seed in args.seeds:
            config = SearchConfig(args.model, args.dataset, ratio, args.trials, "baseline", seed, args.device,
                                  args.warmup)
            run_id = search_to_completion(config, history, progress=True)
            with HistoryStore(history) as store:
                run = store.read_run(run_id)
            run_ids.append(run_id)
            env = make_env(config)
            scores.append(scored(env, run.final_policy.tolist()))
        uniform = scored(env, uniform_policy(env.unwrapped.budget))
        rng = np.random.default_rng(0)
        randoms = [scored(env, random_policy(len(env.unwrapped.units), rng)) for _ in range(args.random)]
        best_random = max(randoms)
        mean = np.mean(scores, axis=0)
        rows.append((ratio, mean, [s[0] for s in scores], uniform, best_random))

    print(f"| p | baseline best (reward / test, mean of {len(args.seeds)} seeds) | per seed (reward) | "
          f"uniform (reward / test) | best of {args.random} random (reward / test) | baseline - uniform (reward) |")
    print("|---|---|---|---|---|---|")
    for ratio, mean, per_seed, uniform, best_random in rows:
        print(f"| {ratio} | {100 * mean[0]:.2f}% / {100 * mean[1]:.2f}% (MACs {mean[2]:.3f}) | "
              f"{', '.join(f'{100 * a:.2f}' for a in per_seed)} | {100 * uniform[0]:.2f}% / {100 * uniform[1]:.2f}% | "
              f"{100 * best_random[0]:.2f}% / {100 * best_random[1]:.2f}% | {100 * (mean[0] - uniform[0]):+.2f} pp |")
    with HistoryStore(history) as store:
        plot_learning_curves([store.read_run(r) for r in run_ids], Path(args.plot))
    print(f"\nlearning curves: {args.plot}")


if __name__ == "__main__":
    main()
