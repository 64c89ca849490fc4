"""What hand-made policies reach: a map of the search space next to the uniform policy.

Each policy gives a kept fraction per ResNet-20 stage (three units each); the env's action
wall clips them to the budget. Tells whether a searched policy has room to beat uniform.

Feeds NOTEBOOK.md, "Hand-made policies at p = 0.3 (issue 5, context)".

    .venv/bin/python benchmarks/probes/policy_landscape.py [--ratio 0.3]
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np

from prune_gym import ENV_ID
from prune_gym.policies import play, uniform_policy

# Kept fraction per stage of a CIFAR ResNet-20 (units 0-2, 3-5, 6-8).
STAGE_POLICIES = {
    "increasing with depth": (0.15, 0.3, 0.45),
    "stage 3 kept most": (0.2, 0.25, 0.45),
    "stage 2 kept most": (0.2, 0.5, 0.2),
    "decreasing with depth": (0.45, 0.3, 0.15),
    "stage 1 kept most": (0.5, 0.25, 0.15),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratio", type=float, default=0.3)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    env = gym.make(ENV_ID, model="resnet20", target_ratio=args.ratio, device=args.device)
    policies = {"uniform": uniform_policy(env.unwrapped.budget)}
    policies.update({name: [f for f in stages for _ in range(3)] for name, stages in STAGE_POLICIES.items()})
    print(f"| policy (p = {args.ratio}) | reward-split acc. | MACs ratio | kept fraction per unit |")
    print("|---|---|---|---|")
    for name, policy in policies.items():
        info = play(env, policy)
        kept = " ".join(f"{f:.2f}" for f in np.round(info["policy"], 2))
        print(f"| {name} | {100 * info['accuracy']:.2f}% | {info['macs_ratio']:.3f} | {kept} |", flush=True)


if __name__ == "__main__":
    main()
