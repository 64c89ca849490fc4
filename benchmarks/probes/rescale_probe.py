"""How well a source's best policies carry to another ratio: Eq. 2, scaling as a whole, a power (issue 19).

Augmented transfer and the assistant start a search from the source run's trials rewritten
for the target ratio. This takes each source run's best trials from a study's committed
data (the league's), rewrites them for the target ratio each way
(`prune_gym.agents.augmentation.rescale_policy`: "eq2", the paper's, "budget", "power") and plays
them on the target, so that one reads what history hands a search before it learns
anything: the best of the top trials per source seed, against the uniform policy.

Feeds NOTEBOOK.md, "How `history` came to be (issue 19, version 2)" (its first tables).

    .venv/bin/python benchmarks/probes/rescale_probe.py --source-ratio 0.3 --target-ratio 0.2
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from prune_gym.agents.augmentation import RESCALES, rescale_policy
from prune_gym.agents.config import SearchConfig
from prune_gym.agents.loop import make_env
from prune_gym.benchmarks.data_export import DATA, read_csv_gz
from prune_gym.benchmarks.study import committed_checkpoint
from prune_gym.policies import play, uniform_policy


def top_policies(rows: list[dict[str, str]], top: int) -> dict[int, list[np.ndarray]]:
    """Per seed, the policies of its `top` most accurate trials, best first."""
    seeds: dict[int, list[dict[str, str]]] = {}
    for row in rows:
        seeds.setdefault(int(row["seed"]), []).append(row)
    return {seed: [np.array(r["policy"].split(), dtype=np.float64)
                   for r in sorted(found, key=lambda r: -float(r["accuracy"]))[:top]]
            for seed, found in sorted(seeds.items())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", default="league", help="whose committed trials are the sources")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--agent", default="amc-ddpg", help="the searcher whose runs are the sources")
    parser.add_argument("--source-ratio", type=float, required=True)
    parser.add_argument("--target-ratio", type=float, required=True)
    parser.add_argument("--top", type=int, default=10, help="best trials per source run")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = [r for r in read_csv_gz(args.data / f"{args.study}-trials.csv.gz")
            if r["model"] == args.model and float(r["ratio"]) == args.source_ratio and r["agent"] == args.agent
            and r["method"] == "baseline"]
    if not rows:
        parser.exit(2, f"rescale_probe: no {args.agent} baseline runs of {args.model} at {args.source_ratio} "
                       f"in the {args.study} data\n")
    checkpoint = committed_checkpoint(args.model, "fashion-mnist")
    env = make_env(SearchConfig(args.model, ratio=args.target_ratio, device=args.device, checkpoint=str(checkpoint)))
    uniform = play(env, uniform_policy(env.unwrapped.budget))["accuracy"]
    policies = top_policies(rows, args.top)
    print(f"{args.model}: the {args.top} best trials of each {args.agent} run at p = {args.source_ratio} "
          f"({args.study} data), played at p = {args.target_ratio}; uniform policy {100 * uniform:.2f}%")
    print("| source seed | " + " | ".join(f"{r}: best | {r}: mean | {r}: worst" for r in RESCALES) + " |")
    print("|---" * (1 + 3 * len(RESCALES)) + "|")
    best = {rescale: [] for rescale in RESCALES}
    bar = tqdm(policies.items(), desc="source runs", leave=False)
    for seed, found in bar:
        cells = [str(seed)]
        for rescale in RESCALES:
            scores = [play(env, rescale_policy(p, args.source_ratio, env.unwrapped, rescale).tolist())["accuracy"]
                      for p in found]
            best[rescale].append(max(scores))
            cells += [f"{100 * max(scores):.2f}", f"{100 * np.mean(scores):.2f}", f"{100 * min(scores):.2f}"]
        bar.write("| " + " | ".join(cells) + " |")
    print("mean best: " + ", ".join(f"{r} {100 * np.mean(best[r]):.2f}%" for r in RESCALES))


if __name__ == "__main__":
    main()
