"""Does the latency table predict what a slim model measures? (issue 21's latency budget)

Builds the env with `budget="latency"` (measuring the table, or reading it from the cache),
plays random policies, and for each finished episode compares the table's prediction with
the slim network's measured latency (`prune_gym.speed`, batch 1, on the same device).
Prints each episode and the largest relative error; no episode may end over its budget.

    .venv/bin/python benchmarks/latency_budget.py --model resnet20 --ratio 0.8 --episodes 10 --device cpu
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch

import prune_gym
from prune_gym.policies import play, random_policy
from prune_gym.speed import measure_speed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--ratio", type=float, default=0.8, help="the fraction of the latency to keep")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    env = gym.make(prune_gym.ENV_ID, model=args.model, dataset=args.dataset, target_ratio=args.ratio,
                   device=args.device, budget="latency")
    unwrapped = env.unwrapped
    budget = unwrapped.budget
    print(f"{args.model}, latency budget {args.ratio} of {budget.total:.3f} ms (table: {budget.table.rest_ms:.3f} ms "
          f"outside the layers), env built in {time.perf_counter() - start:.0f} s, {torch.get_num_threads()} threads")
    print("| episode | latency ratio (table) | predicted ms | measured ms | error | MACs ratio |")
    print("|---|---|---|---|---|---|")
    rng = np.random.default_rng(args.seed)
    errors = []
    for episode in range(args.episodes):
        info = play(env, random_policy(len(unwrapped.units), rng))
        predicted = budget.cost(info["kept_channels_per_unit"])
        measured = measure_speed(unwrapped.pruned_network, unwrapped.workload.input_shape, unwrapped.device).latency_ms
        errors.append(predicted / measured - 1)
        assert info["latency_ratio"] <= args.ratio + 1e-9, "an episode ended over its budget"
        print(f"| {episode} | {info['latency_ratio']:.3f} | {predicted:.3f} | {measured:.3f} | {errors[-1]:+.1%} | "
              f"{info['macs_ratio']:.3f} |")
    whole = measure_speed(unwrapped.workload.model, unwrapped.workload.input_shape, unwrapped.device).latency_ms
    print(f"unpruned: table {budget.total:.3f} ms, measured {whole:.3f} ms; largest error {max(map(abs, errors)):.1%}, "
          f"mean {np.mean(errors):+.1%}")


if __name__ == "__main__":
    main()
