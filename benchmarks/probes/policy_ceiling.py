"""How far above the uniform policy any policy gets: a black-box search that needs no agent.

An evolution strategy ((mu, lambda), 12 offspring, 4 parents, step size decaying 3% per
generation) over per-unit log-weights. Each candidate is scaled to spend the whole MACs
budget (a bisection on one common factor), so every trial is a full-budget policy, and
is played through the env. It tells an RL search what there is to win on a workload, and
is a reference an agent should beat in trials to converge.

Feeds NOTEBOOK.md, "How far above uniform a policy gets at p = 0.3 (issue 5, context)".

    .venv/bin/python benchmarks/probes/policy_ceiling.py --ratio 0.3 --evaluations 300
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np
from tqdm.auto import tqdm

from prune_gym import ENV_ID
from prune_gym.policies import budget_filling_policy, play, uniform_policy

OFFSPRING, PARENTS, STEP, STEP_DECAY = 12, 4, 0.5, 0.97


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--ratio", type=float, default=0.3)
    parser.add_argument("--evaluations", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    env = gym.make(ENV_ID, model=args.model, dataset=args.dataset, target_ratio=args.ratio, device=args.device)
    budget = env.unwrapped.budget
    uniform = play(env, uniform_policy(budget))["accuracy"]
    rng = np.random.default_rng(args.seed)
    mean, step = np.zeros(len(budget.channels)), STEP
    best_accuracy, best_policy, best_at = uniform, uniform_policy(budget), 0
    milestones = {}
    with tqdm(total=args.evaluations, desc=f"ES p={args.ratio}", unit="trial") as bar:
        while bar.n < args.evaluations:
            population = mean + step * rng.standard_normal((OFFSPRING, len(mean)))
            scores = []
            for log_weights in population:
                info = play(env, budget_filling_policy(budget, log_weights))
                scores.append(info["accuracy"])
                bar.update(1)
                if info["accuracy"] > best_accuracy:
                    best_accuracy, best_policy, best_at = info["accuracy"], info["policy"], bar.n
                milestones[bar.n] = best_accuracy
                bar.set_postfix(best=f"{best_accuracy:.4f}", refresh=False)
            mean = population[np.argsort(scores)[::-1][:PARENTS]].mean(0)
            step *= STEP_DECAY

    print(f"\n{args.model} / {args.dataset}, p = {args.ratio}: uniform {100 * uniform:.2f}%")
    print("| trials | best so far (reward split) | over uniform |")
    print("|---|---|---|")
    for n in (12, 50, 100, 200, 300, 500, 1000):
        if n in milestones:
            print(f"| {n} | {100 * milestones[n]:.2f}% | {100 * (milestones[n] - uniform):+.2f} pp |")
    print(f"\nbest {100 * best_accuracy:.2f}% at trial {best_at}: "
          + " ".join(f"{f:.2f}" for f in best_policy))


if __name__ == "__main__":
    main()
