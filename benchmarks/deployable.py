"""A searched policy against what a user would pick instead, fine-tuned alike and timed (issue 21).

For a model and ratio p: the slim model of a searched policy (the best policy of a run in the
committed data, of an export, or one given as fractions), the uniform policy's (one fraction
for every unit, pruned and refit by the env like the searched one), and Torch-Pruning's
uniform magnitude pruning at the same MACs or fewer (one ratio for every layer it prunes, L2
magnitude importance, found by bisection). Torch-Pruning prunes the layers our units hold
(`--tp-layers units`: the residual streams stay whole, as in our env) or every layer its
dependency graph can (`--tp-layers all`). Each is scored on the test split before and after
the same fine-tuning recipe, and timed against the original on this machine's CPU, in
back-to-back pairs (`prune_gym.speed.paired_latency`). `--speed-only` skips the fine-tuning:
speed depends on the architecture alone, and is best re-measured with nothing else running.
The network is the committed one the policy was searched on (`benchmarks/checkpoints/`); each
comparison is appended to `--record` as one JSON line per model, and `--report` prints the
table of such a file.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/deployable.py --model resnet20 --ratio 0.3 --epochs 3 \\
        --policy-from league --agent amc-ddpg --seed 0 --record benchmarks/data/deployable.jsonl
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import gymnasium as gym
import torch
from torch import nn

import prune_gym
from prune_gym.alternatives import torch_pruning_at_macs, unit_layers
from prune_gym.benchmarks.data_export import DATA, read_csv_gz
from prune_gym.benchmarks.results_file import add_into_argument, deployable_markers, print_or_write
from prune_gym.benchmarks.study import committed_checkpoint
from prune_gym.checkpoints import read_checkpoint
from prune_gym.datasets import DataSplits
from prune_gym.errors import PruneGymError
from prune_gym.evaluation import accuracy
from prune_gym.export import export_slim, load_slim, read_spec
from prune_gym.finetune import FinetuneRecipe, finetune_on_splits
from prune_gym.macs import count_macs
from prune_gym.policies import play, uniform_policy
from prune_gym.pretrain import checkpoint_splits
from prune_gym.speed import MIN_RUN_SECONDS, measure_speed, paired_latency


@dataclass
class Candidate:
    """One slim model and how it fared; test_after is NaN where it was not fine-tuned (`--speed-only`)."""

    name: str
    macs_ratio: float
    test_before: float
    test_after: float
    latency_ms: float  # batch 1, the median of the pairs
    speed_up: float  # the original's batch-1 latency over this model's, measured in pairs (`paired_latency`)
    throughput: float  # images/s at batch 64


def searched_policy(study: str, model: str, ratio: float, agent: str, seed: int, data: Path = DATA) -> list[float]:
    """The best policy of a committed run."""
    rows = [r for r in read_csv_gz(data / f"{study}-policies.csv.gz") if r["model"] == model and
            float(r["ratio"]) == ratio and r["agent"] == agent and int(r["seed"]) == seed and r["source"] == "-"]
    if not rows:
        raise PruneGymError(f"no {agent} run of seed {seed} on {model} at p = {ratio} in the {study} data")
    return [float(f) for f in rows[0]["policy"].split()]


def evaluate(name: str, slim: nn.Module, original: nn.Module, input_shape: tuple[int, ...], splits: DataSplits,
             recipe: FinetuneRecipe | None, device: torch.device, min_run_seconds: float = MIN_RUN_SECONDS
             ) -> Candidate:
    """Test accuracy before and after fine-tuning by `recipe` (None: not fine-tuned), and the CPU speed
    against the original, measured in pairs, each measurement `min_run_seconds` long."""
    before = accuracy(slim, splits.test.batches(500, device))
    after = float("nan")
    if recipe is not None:
        finetune_on_splits(slim, splits, recipe, device)
        after = accuracy(slim, splits.test.batches(500, device))
    paired = paired_latency(slim, original, input_shape, "cpu", min_run_seconds=min_run_seconds)
    macs_ratio = count_macs(slim, input_shape) / count_macs(original, input_shape)
    return Candidate(name, macs_ratio, before, after, statistics.median(paired.first_ms), 1 / paired.ratio,
                     measure_speed(slim, input_shape, "cpu", min_run_seconds=min_run_seconds).throughput)


CANDIDATES = ("searched", "uniform", "torch-pruning")


def compare(env: gym.Env, policy: list[float], recipe: FinetuneRecipe | None, splits: DataSplits,
            tp_layers: str = "units", candidates: tuple[str, ...] = CANDIDATES,
            min_run_seconds: float = MIN_RUN_SECONDS) -> list[Candidate]:
    """The original, the searched policy's slim model, the uniform policy's (pruned by the env alike: the
    search's share of the result) and Torch-Pruning's, fine-tuned alike on `splits` (the splits the env's
    checkpoint was trained with) unless `recipe` is None; those of `candidates` only. Ours are timed as a user
    deploys them: exported and loaded as plain modules (`load_slim`), each measurement `min_run_seconds` long
    (a check of the pipeline times less than a record does)."""
    unwrapped = env.unwrapped
    workload, device = unwrapped.workload, unwrapped.device
    shape = workload.input_shape
    original = workload.model.cpu().eval()
    slims = {}  # candidate: (the table's name, the slim model)
    with tempfile.TemporaryDirectory() as tmp:
        for key, name, fractions in (("searched", "searched policy", policy),
                                     ("uniform", "uniform policy", uniform_policy(unwrapped.budget))):
            info = play(env, fractions)
            export_slim(env, Path(tmp) / key, info)
            slims[key] = (name, load_slim(Path(tmp) / key))
    if "torch-pruning" in candidates:
        macs_budget = count_macs(slims["searched"][1], shape)
        slims["torch-pruning"] = (f"Torch-Pruning uniform ({tp_layers})",
                                  torch_pruning_at_macs(original, shape, macs_budget, tp_layers, unit_layers(env)))
    base = measure_speed(original, shape, "cpu", min_run_seconds=min_run_seconds)
    rows = [Candidate("original", 1.0, accuracy(original.to(device), splits.test.batches(500, device)),
                      float("nan"), base.latency_ms, 1.0, base.throughput)]
    return rows + [evaluate(name, slim.to(device), original, shape, splits, recipe, device, min_run_seconds)
                   for key, (name, slim) in slims.items() if key in candidates]


def markdown(records: list[dict]) -> str:
    """The comparisons in `records` (rows as `--record` writes them) as one table, a row per model, ratio and
    slim model: its accuracies from the last record that fine-tuned it, its speed from the last record
    (a `--speed-only` run re-measures speed without fine-tuning again)."""
    rows: dict[tuple, dict] = {}
    for r in records:
        key = (r["model"], r["ratio"] if r["name"] != "original" else None, r["name"])
        row = rows.setdefault(key, dict(r))
        row.update({k: r[k] for k in ("latency_ms", "speed_up", "throughput") if k in r})
        if r["name"] == "original" or not math.isnan(r["test_after"]):
            row.update({k: r[k] for k in ("test_before", "test_after", "epochs", "policy_from", "macs_ratio")})
    lines = ["| model | p | slim model | MACs ratio | test before | test after fine-tuning | latency (ms) | "
             "speed-up | images/s at batch 64 |", "|---|---|---|---|---|---|---|---|---|"]
    for (model, ratio, name), r in rows.items():
        if name == "searched policy":
            name = f"searched policy ({r['policy_from']})"
        after = "-" if math.isnan(r["test_after"]) else f"{100 * r['test_after']:.2f}%"
        lines.append(f"| {model} | {ratio or '-'} | {name} | {r['macs_ratio']:.3f} | {100 * r['test_before']:.2f}% | "
                     f"{after} | {r['latency_ms']:.2f} | {r['speed_up']:.2f}x | {r['throughput']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--ratio", type=float)
    parser.add_argument("--policy", help="comma-separated kept fractions, one per unit")
    parser.add_argument("--policy-from", default="league",
                        help="the study whose committed best policy to take, or an export directory "
                             "(`prune-gym search --out`) whose policy to take")
    parser.add_argument("--label", help="how the table names the policy's origin (default: study, agent, seed)")
    parser.add_argument("--agent", default="amc-ddpg")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--speed-only", action="store_true",
                        help="measure the slim models' speed (and accuracy before fine-tuning) only")
    parser.add_argument("--tp-layers", choices=["units", "all"], default="units")
    parser.add_argument("--candidates", nargs="+", choices=CANDIDATES, default=list(CANDIDATES),
                        help="the slim models to compare (default: all)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--checkpoint", help="the network's weights (default: the committed ones)")
    parser.add_argument("--record", type=Path, help="a JSON-lines file to append the comparison to")
    parser.add_argument("--report", type=Path, help="print the table of a --record file's comparisons, and stop")
    add_into_argument(parser)
    args = parser.parse_args()
    if args.into and not args.report:
        parser.error("--into writes the table of --report FILE")
    if args.report:
        records = [json.loads(line) for line in args.report.read_text().splitlines() if line.strip()]
        print_or_write(markdown(records), args.into, deployable_markers(args.report))
        return
    if args.ratio is None:
        parser.error("--ratio is required (or --report FILE)")
    checkpoint = args.checkpoint or committed_checkpoint(args.model, args.dataset)
    if not Path(checkpoint).exists():
        parser.exit(2, f"deployable: error: no weights at {checkpoint}; pretrain them with `benchmarks/study.py "
                       f"--models {args.model}` or pass --checkpoint\n")
    if args.policy:
        policy = [float(f) for f in args.policy.split(",")]
    elif Path(args.policy_from).is_dir():
        policy = [u["kept"] / u["channels"] for u in read_spec(args.policy_from)["units"]]
    else:
        policy = searched_policy(args.policy_from, args.model, args.ratio, args.agent, args.seed)
    env = gym.make(prune_gym.ENV_ID, model=args.model, dataset=args.dataset, target_ratio=args.ratio,
                   device=args.device, checkpoint=checkpoint)
    splits = checkpoint_splits(read_checkpoint(checkpoint)[1], args.dataset)  # the images its training left out
    rows = compare(env, policy, None if args.speed_only else FinetuneRecipe(epochs=args.epochs), splits,
                   args.tp_layers, tuple(args.candidates))
    policy_from = args.label or ("given" if args.policy else f"{args.policy_from} {args.agent} seed {args.seed}")
    records = [{"model": args.model, "dataset": args.dataset, "ratio": args.ratio, "policy_from": policy_from,
                "epochs": args.epochs, "tp_layers": args.tp_layers, "threads": torch.get_num_threads(), **asdict(r)}
               for r in rows]
    print(f"{args.model} at p = {args.ratio}, fine-tuned {args.epochs} epochs alike; CPU latency at batch 1, "
          f"{torch.get_num_threads()} threads")
    print(markdown(records))
    if args.record:
        with args.record.open("a") as f:
            f.writelines(json.dumps(r) + "\n" for r in records)


if __name__ == "__main__":
    main()
