"""Does the latency table predict what a slim model measures? (issue 21's latency budget)

Builds the env with `budget="latency"` (measuring the table, or reading it from the cache),
plays random policies, and for each finished episode compares the table's predicted
latency ratio (slim over unpruned) with the measured one (`prune_gym.speed.paired_latency`:
`--pairs` back-to-back measurements of the slim and the unpruned network at batch 1, on the
same device). The ratio, not milliseconds: this machine's speed drifts by 10-20% over
minutes, so a table measured earlier predicts milliseconds no better than that, while the
ratio of two models measured side by side is what the budget bounds. The predicted
milliseconds are the table's ratio times the unpruned network's latency measured beside the
slim one. Prints each episode and the largest relative error; no episode may end over its
budget.

Feeds RESULTS.md, "The latency budget's table against measurement".

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/probes/latency_budget.py --model resnet20 --ratio 0.8 --episodes 10 \\
        --device cpu
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch

import prune_gym
from prune_gym.policies import play, random_policy
from prune_gym.speed import paired_latency


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--ratio", type=float, default=0.8, help="the fraction of the latency to keep")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--pairs", type=int, default=5, help="back-to-back measurements of each slim model")
    args = parser.parse_args()
    start = time.perf_counter()
    env = gym.make(prune_gym.ENV_ID, model=args.model, dataset=args.dataset, target_ratio=args.ratio,
                   device=args.device, budget="latency")
    unwrapped = env.unwrapped
    budget = unwrapped.budget
    print(f"{args.model}, latency budget {args.ratio} of {budget.total:.3f} ms (table: {budget.table.rest_ms:.3f} ms "
          f"outside the layers), env built in {time.perf_counter() - start:.0f} s, {torch.get_num_threads()} threads")
    print(f"| episode | latency ratio (table) | measured ratio (median of {args.pairs} pairs) | slim ms, measured | "
          f"slim ms, predicted | unpruned ms, measured | error | MACs ratio |")
    print("|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(args.seed)
    errors = []
    for episode in range(args.episodes):
        info = play(env, random_policy(len(unwrapped.units), rng))
        assert info["latency_ratio"] <= args.ratio + 1e-9, "an episode ended over its budget"
        # Both as the env's traced networks, as the table's whole-network measurement times them.
        paired = paired_latency(unwrapped.pruned_network, unwrapped.graph.graph_module, unwrapped.workload.input_shape,
                                unwrapped.device, args.pairs)
        slim_ms, whole_ms = np.median(paired.first_ms), np.median(paired.second_ms)
        errors.append(info["latency_ratio"] / paired.ratio - 1)
        print(f"| {episode} | {info['latency_ratio']:.3f} | {paired.ratio:.3f} | {slim_ms:.3f} | "
              f"{info['latency_ratio'] * whole_ms:.3f} | {whole_ms:.3f} | {errors[-1]:+.1%} | "
              f"{info['macs_ratio']:.3f} |")
    print(f"largest error {max(map(abs, errors)):.1%}, mean {np.mean(errors):+.1%}; the table's unpruned network: "
          f"{budget.total:.3f} ms")


if __name__ == "__main__":
    main()
