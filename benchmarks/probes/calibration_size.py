"""How much calibration data reconstruction needs: accuracy and episode cost per calibration size.

For each (calibration images, positions per image): the uniform policy's accuracy and the
mean accuracy of `--random` random policies (seeded) at each ratio, and the calibration
stage's seconds per episode. Fewer images make episodes cheaper and the refit worse.

Feeds RESULTS.md, "Calibration size: accuracy against episode cost (issue 3)", and the ranking table of
"Reconstruction pays (issue 3)".

    .venv/bin/python benchmarks/probes/calibration_size.py [--sizes 256 500 1000] [--ratios 0.3 0.2]
"""

from __future__ import annotations

import argparse

import gymnasium as gym
import numpy as np

from prune_gym import ENV_ID
from prune_gym.policies import play, random_policy, uniform_policy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 500, 1000])
    parser.add_argument("--positions", type=int, default=10)
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.3, 0.2])
    parser.add_argument("--random", type=int, default=6)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    print(f"| calibration images x positions | p | uniform | mean of {args.random} random | calibration s/episode |")
    print("|---|---|---|---|---|")
    for size in args.sizes:
        for ratio in args.ratios:
            env = gym.make(ENV_ID, target_ratio=ratio, device=args.device, calibration_images=size,
                           positions_per_image=args.positions)
            uniform = play(env, uniform_policy(env.unwrapped.budget))["accuracy"]
            rng = np.random.default_rng(0)
            randoms, seconds = [], []
            for _ in range(args.random):
                randoms.append(play(env, random_policy(len(env.unwrapped.units), rng))["accuracy"])
                seconds.append(env.unwrapped.timings["calibration"])
            print(f"| {size} x {args.positions} | {ratio} | {100 * uniform:.2f}% | {100 * np.mean(randoms):.2f}% | "
                  f"{np.median(seconds):.3f} |", flush=True)


if __name__ == "__main__":
    main()
