"""Episodes a second of a task's vector envs: N separate envs (Gymnasium's sync and async vector envs) against
the native one, which plays N episodes in one process.

Each way plays uniformly random actions for a few seconds (at least two rounds of episodes):

    .venv/bin/python benchmarks/vector_speed.py --task ChannelPrune-ResNet20-FashionMNIST-p0.2-surrogate-v0
    .venv/bin/python benchmarks/vector_speed.py --task ChannelPrune-ResNet20-FashionMNIST-p0.2-v0 --sizes 2 --seconds 20
"""

from __future__ import annotations

import argparse
import time

import gymnasium as gym
import numpy as np
import torch

import prune_gym  # noqa: F401  (registers the tasks)
from prune_gym.tasks import SURROGATES, TASKS

MODES = ("sync", "async", "native")


def episodes_per_second(envs: gym.vector.VectorEnv, units: int, seconds: float) -> float:
    """Whole episodes of `units` steps played a second by `envs` (whose episodes all end together), random actions;
    the first round, which builds what is built lazily, is not counted."""
    rng = np.random.default_rng(0)
    envs.reset(seed=0)
    rounds, start = -1, time.perf_counter()
    while rounds < 2 or time.perf_counter() - start < seconds:
        for _ in range(units + 1):  # the step after the last one starts the next episodes (next-step autoreset)
            envs.step(rng.uniform(0, 1, (envs.num_envs, 1)).astype(np.float32))
        rounds += 1
        if rounds == 0:
            start = time.perf_counter()
    return rounds * envs.num_envs / (time.perf_counter() - start)


def make(task: str, n: int, mode: str) -> gym.vector.VectorEnv:
    kwargs = {} if task in SURROGATES else {"device": "cpu"}
    if mode == "native":
        return gym.make_vec(task, num_envs=n, **kwargs)
    return gym.make_vec(task, num_envs=n, vectorization_mode=mode, **kwargs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="ChannelPrune-ResNet20-FashionMNIST-p0.2-surrogate-v0",
                        choices=[*TASKS, *SURROGATES])
    parser.add_argument("--sizes", nargs="+", type=int, default=[1, 16, 256, 1024])
    parser.add_argument("--modes", nargs="+", choices=MODES, default=["sync", "native"])
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    units = len(gym.make(args.task, **({} if args.task in SURROGATES else {"device": "cpu"})).unwrapped.units)
    print(f"{args.task}: episodes a second, torch on {torch.get_num_threads()} threads in this process (a forked "
          f"async worker: 1)\n\n| N | " + " | ".join(args.modes) + " |\n|---|" + "---|" * len(args.modes))
    for n in args.sizes:
        rates = []
        for mode in args.modes:
            envs = make(args.task, n, mode)
            rates.append(episodes_per_second(envs, units, args.seconds))
            envs.close()
        print(f"| {n} | " + " | ".join(f"{r:,.{2 if r < 10 else 0}f}" for r in rates) + " |")


if __name__ == "__main__":
    main()
