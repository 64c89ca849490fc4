"""Does the refit pay? The uniform policy pruned three ways, scored on the reward and test splits.

Modes: "pruned" (refit from the pruned network's inputs, with the shortcut correction),
"original" (refit from the original network's inputs), "magnitude" (L1 filter norms, no
refit). Needs the pretrained checkpoint (`prune-gym pretrain`).

Feeds RESULTS.md, "Reconstruction pays (issue 3)".

    .venv/bin/python benchmarks/probes/reconstruction_quality.py [--model resnet20] [--ratios 0.5 0.3 0.2]
"""

from __future__ import annotations

import argparse

import gymnasium as gym

from prune_gym import ENV_ID
from prune_gym.evaluation import accuracy
from prune_gym.policies import play, uniform_policy
from prune_gym.pruner import MODES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.5, 0.3, 0.2])
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    print("| p | reconstruction | reward-split acc. | test acc. | MACs ratio |")
    print("|---|---|---|---|---|")
    for ratio in args.ratios:
        for mode in MODES:
            env = gym.make(ENV_ID, model=args.model, dataset=args.dataset, target_ratio=ratio, device=args.device,
                           reconstruction=mode)
            unwrapped = env.unwrapped
            info = play(env, uniform_policy(unwrapped.budget))
            test = accuracy(unwrapped.pruned_network, unwrapped.workload.test.batches(1000, unwrapped.device))
            print(f"| {ratio} | {mode} | {100 * info['accuracy']:.2f}% | {100 * test:.2f}% | "
                  f"{info['macs_ratio']:.4f} |", flush=True)
    original_test = accuracy(unwrapped.graph.graph_module, unwrapped.workload.test.batches(1000, unwrapped.device))
    print(f"| 1.0 | unpruned | {100 * unwrapped.original_accuracy:.2f}% | {100 * original_test:.2f}% | 1.0000 |")


if __name__ == "__main__":
    main()
