"""Where an episode's time goes, against one forward pass of the final pruned network.

An episode (reset to terminated) is timed whole and by stage: calibration forward and Gram
accumulation, selection (a lookup in the ranking computed when the env is built), refit and
surgery, and the final evaluation on the reward split. The reference is the exported slim
model (a plain nn.Module) run over the reward split with the same batch size. Target:
episode <= 1.5x that forward pass. Medians over --episodes episodes after one warm-up.

Feeds RESULTS.md, "Episode speed (issue 3)" and "Residual streams as units (issue 20)".

    .venv/bin/python benchmarks/probes/episode_speed.py [--ratios 0.5 0.3 0.2] [--device cpu|cuda] [--residual-streams]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import gymnasium as gym
import torch

from prune_gym import ENV_ID
from prune_gym.evaluation import accuracy
from prune_gym.export import export_slim, load_slim
from prune_gym.policies import play, uniform_policy


def timed(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.5, 0.3, 0.2])
    parser.add_argument("--episodes", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--residual-streams", action="store_true", help="make the residual streams units too")
    parser.add_argument("--checkpoint", help="trained weights (default: the cached pretrained checkpoint)")
    args = parser.parse_args()

    stages = ("reset", "calibration", "selection", "refit", "evaluation")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print("| p | device | uniform accuracy | episode (s) | slim forward (s) | ratio | " + " | ".join(stages) + " |")
    print("|---|---|---|---|---|---|" + "---|" * len(stages))
    for ratio in args.ratios:
        env = gym.make(ENV_ID, model=args.model, dataset=args.dataset, target_ratio=ratio, device=args.device,
                       residual_streams=args.residual_streams, checkpoint=args.checkpoint)
        unwrapped = env.unwrapped
        policy = uniform_policy(unwrapped.budget)
        uniform = play(env, policy)["accuracy"]  # also the warm-up
        episodes, splits = [], {s: [] for s in stages}
        for _ in range(args.episodes):
            episodes.append(timed(lambda: play(env, policy), unwrapped.device))
            for stage in stages:
                splits[stage].append(unwrapped.timings[stage])
        with tempfile.TemporaryDirectory() as tmp:
            export_slim(env, tmp)
            slim = load_slim(tmp).to(unwrapped.device)
        x, y = unwrapped._reward_x, unwrapped._reward_y
        size = unwrapped.batch_size
        batches = lambda: accuracy(slim, ((x[i:i + size], y[i:i + size]) for i in range(0, len(y), size)))
        batches()  # warm-up
        forward = statistics.median(timed(batches, unwrapped.device) for _ in range(args.episodes))
        episode = statistics.median(episodes)
        print(f"| {ratio} | {unwrapped.device} | {uniform:.2%} | {episode:.3f} | {forward:.3f} | "
              f"{episode / forward:.2f} | "
              + " | ".join(f"{statistics.median(splits[s]):.3f}" for s in stages) + " |", flush=True)


if __name__ == "__main__":
    main()
