"""A searched policy against what a user would pick instead, both fine-tuned alike and timed (issue 21).

For a model and ratio p: the slim model of a searched policy (the best policy of a run in the
committed data, of an export, or one given as fractions), the uniform policy's (one fraction
for every unit, pruned and refit by the env like the searched one), and Torch-Pruning's
uniform magnitude pruning at the same MACs or fewer (one ratio for every layer it prunes, L2
magnitude importance, found by bisection). Torch-Pruning prunes the same layers our units hold (`--tp-layers units`: the
residual streams stay whole, as in our env) or every layer its dependency graph can
(`--tp-layers all`). Each is scored on the test split before and after the same fine-tuning
recipe, and timed against the original on this machine's CPU (`prune_gym.speed`). The network
is the committed one the policy was searched on (`benchmarks/checkpoints/`), and each finished
comparison is appended to `--record` as one JSON line per model.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/deployable.py --model resnet20 --ratio 0.3 --epochs 3 \\
        --policy-from league --agent amc-ddpg --seed 0 --record benchmarks/data/deployable.jsonl
"""

from __future__ import annotations

import argparse
import copy
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import gymnasium as gym
import torch
from torch import nn

import prune_gym
from prune_gym.benchmarks.data_export import DATA, read_csv_gz
from prune_gym.benchmarks.study import committed_checkpoint
from prune_gym.datasets import DataSplits, ImageSplit, load_splits
from prune_gym.errors import PruneGymError
from prune_gym.evaluation import accuracy
from prune_gym.export import read_spec
from prune_gym.finetune import FinetuneRecipe, finetune
from prune_gym.macs import count_macs
from prune_gym.policies import play, uniform_policy
from prune_gym.pretrain import SplitSpec
from prune_gym.speed import measure_speed


@dataclass
class Candidate:
    """One slim model and how it fared."""

    name: str
    macs_ratio: float
    test_before: float
    test_after: float
    latency_ms: float
    throughput: float


def searched_policy(study: str, model: str, ratio: float, agent: str, seed: int, data: Path = DATA) -> list[float]:
    """The best policy of a committed run."""
    rows = [r for r in read_csv_gz(data / f"{study}-policies.csv.gz") if r["model"] == model and
            float(r["ratio"]) == ratio and r["agent"] == agent and int(r["seed"]) == seed and r["source"] == "-"]
    if not rows:
        raise PruneGymError(f"no {agent} run of seed {seed} on {model} at p = {ratio} in the {study} data")
    return [float(f) for f in rows[0]["policy"].split()]


def torch_pruning_uniform(model: nn.Module, input_shape: tuple[int, ...], macs_budget: int, layers: str,
                          unit_producers: set[str], steps: int = 20) -> nn.Module:
    """Torch-Pruning's uniform L2-magnitude pruning with the smallest ratio whose MACs fit `macs_budget`."""
    import torch_pruning as tp

    example = torch.zeros(1, *input_shape)

    def pruned(ratio: float) -> nn.Module:
        candidate = copy.deepcopy(model).eval()
        modules = dict(candidate.named_modules())
        prunable = (nn.Conv2d, nn.Linear)
        ignored = [m for name, m in modules.items() if isinstance(m, prunable) and
                   (layers == "units" and name not in unit_producers or isinstance(m, nn.Linear))]
        pruner = tp.pruner.BasePruner(candidate, example, importance=tp.importance.MagnitudeImportance(p=2),
                                      pruning_ratio=ratio, ignored_layers=ignored)
        pruner.step()
        try:
            with torch.no_grad():
                candidate(example)
        except RuntimeError as exc:
            raise PruneGymError(f"Torch-Pruning's model pruned with --tp-layers {layers} does not run ({exc}); "
                                f"its dependency graph mis-groups this architecture (e.g. a zero-padded "
                                f"shortcut)") from None
        return candidate

    low, high = 0.0, 1.0  # bisect the ratio: MACs fall as it rises
    for _ in range(steps):
        middle = (low + high) / 2
        if count_macs(pruned(middle), input_shape) <= macs_budget:
            high = middle
        else:
            low = middle
    return pruned(high)


def evaluate(name: str, slim: nn.Module, original_macs: int, input_shape: tuple[int, ...], train: ImageSplit,
             test: ImageSplit, recipe: FinetuneRecipe, device: torch.device) -> Candidate:
    """Test accuracy before and after fine-tuning, and the fine-tuned model's CPU speed."""
    before = accuracy(slim, test.batches(500, device))
    finetune(slim, lambda g: train.batches(recipe.batch_size, device, shuffle=True, augment=True, generator=g),
             -(-len(train) // recipe.batch_size), recipe, device)
    after = accuracy(slim, test.batches(500, device))
    speed = measure_speed(slim, input_shape, "cpu")
    return Candidate(name, count_macs(slim, input_shape) / original_macs, before, after, speed.latency_ms,
                     speed.throughput)


def compare(env: gym.Env, policy: list[float], recipe: FinetuneRecipe, splits: DataSplits,
            tp_layers: str = "units") -> list[Candidate]:
    """The original, the searched policy's slim model, the uniform policy's (pruned by the env alike: the
    search's share of the result) and Torch-Pruning's, fine-tuned alike on `splits` (the splits the env's
    checkpoint was trained with)."""
    unwrapped = env.unwrapped
    workload, device = unwrapped.workload, unwrapped.device
    shape = workload.input_shape
    original_macs = count_macs(workload.model, shape)
    info = play(env, policy)
    searched = copy.deepcopy(unwrapped.pruned_network)
    play(env, uniform_policy(unwrapped.budget))
    uniform = copy.deepcopy(unwrapped.pruned_network)
    producers = {u.producer for u in unwrapped.units}
    torch_pruning = torch_pruning_uniform(workload.model.cpu(), shape, info["macs"], tp_layers, producers)
    base = measure_speed(workload.model, shape, "cpu")
    rows = [Candidate("original", 1.0, accuracy(workload.model, splits.test.batches(500, device)), float("nan"),
                      base.latency_ms, base.throughput)]
    for name, slim in (("searched policy", searched), ("uniform policy", uniform),
                       (f"Torch-Pruning uniform ({tp_layers})", torch_pruning.to(device))):
        rows.append(evaluate(name, slim, original_macs, shape, splits.train, splits.test, recipe, device))
    return rows


def markdown(records: list[dict]) -> str:
    """The comparisons in `records` (rows as `--record` writes them) as one table; each slim model's
    speed-up is against its own comparison's measurement of the original."""
    lines = ["| model | p | slim model | MACs ratio | test before | test after fine-tuning | latency (ms) | "
             "speed-up | images/s at batch 64 |", "|---|---|---|---|---|---|---|---|---|"]
    original = None
    for r in records:
        if r["name"] == "original":
            original = r
            lines.append(f"| {r['model']} | - | original | 1.000 | {100 * r['test_before']:.2f}% | - | "
                         f"{r['latency_ms']:.2f} | 1.00x | {r['throughput']:.0f} |")
            continue
        name = f"searched policy ({r['policy_from']})" if r["name"] == "searched policy" else r["name"]
        lines.append(f"| {r['model']} | {r['ratio']} | {name} | {r['macs_ratio']:.3f} | {100 * r['test_before']:.2f}% | "
                     f"{100 * r['test_after']:.2f}% | {r['latency_ms']:.2f} | "
                     f"{original['latency_ms'] / r['latency_ms']:.2f}x | {r['throughput']:.0f} |")
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
    parser.add_argument("--tp-layers", choices=["units", "all"], default="units")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--checkpoint", help="the network's weights (default: the committed ones)")
    parser.add_argument("--record", type=Path, help="a JSON-lines file to append the comparison to")
    parser.add_argument("--report", type=Path, help="print the table of a --record file's comparisons, and stop")
    args = parser.parse_args()
    if args.report:
        print(markdown([json.loads(line) for line in args.report.read_text().splitlines() if line.strip()]))
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
    split = SplitSpec()  # the cached pretrained checkpoints' split
    splits = load_splits(args.dataset, None, split.seed, split.calibration_size, split.reward_size)
    rows = compare(env, policy, FinetuneRecipe(epochs=args.epochs), splits, args.tp_layers)
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
