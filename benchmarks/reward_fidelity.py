"""Reward fidelity: which cheap score of a pruned network ranks policies as fine-tuning does.

A search ranks policies by the pruned network's accuracy before any training; a user deploys
the network after a fine-tune. For each scenario (model, ratio p, residual streams as units or
not) this plays a set of policies (the uniform one, the best policies of committed runs on the
same network rewritten for p, and random ones around p), scores each by every candidate
evaluator, and fine-tunes each refit network by the project's recipe (`prune_gym.finetune`, seed 0)
for `--epochs` (1 by default: three epochs for dozens of policies cost hours on a CPU) to its
test accuracy, the target the evaluators should rank as:
* `refit`: the env's reward, the refit network's accuracy on the reward split;
* `refit+bn`: the same after its BatchNorm statistics are measured again on the 500 calibration
  images (`recalibrate_bn=True`);
* `magnitude+bn`: the largest filters kept, no refit, BatchNorm recalibrated;
* `refit+ft`: the refit network after `--short-steps` steps of the fine-tuning recipe.
Each policy's row is appended to `benchmarks/data/reward-fidelity.csv` as soon as it is
measured, so a killed run resumes at the next policy; `--report` gives, per scenario and
evaluator, Kendall's tau against the fine-tuned test accuracy (90% bootstrap interval over the
policies), how many of the evaluator's top 5 are the fine-tune's top 5, and the seconds a trial
costs against the refit's.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/reward_fidelity.py --model resnet20 --ratio 0.2 --policies 40 \
        --short-steps 100
    .venv/bin/python benchmarks/reward_fidelity.py --report --into benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import csv
import itertools
import tempfile
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import prune_gym
from prune_gym.agents.augmentation import rescale_policy
from prune_gym.agents.searcher import warmup_action
from prune_gym.benchmarks import quality
from prune_gym.benchmarks.data_export import DATA, read_csv_gz
from prune_gym.benchmarks.results_file import add_into_argument, fidelity_markers, print_or_write
from prune_gym.benchmarks.study import committed_checkpoint
from prune_gym.checkpoints import read_checkpoint
from prune_gym.evaluation import accuracy
from prune_gym.export import export_slim, load_slim
from prune_gym.finetune import FinetuneRecipe, finetune_on_splits
from prune_gym.policies import play, uniform_policy
from prune_gym.pretrain import checkpoint_splits

FIDELITY = DATA / "reward-fidelity.csv"
EVALUATORS = ("refit", "refit+bn", "magnitude+bn", "refit+ft")
COLUMNS = ("model", "ratio", "residual_streams", "epochs", "short_steps", "index", "kind", "macs_ratio",
           *(f"score_{e}" for e in EVALUATORS), *(f"seconds_{e}" for e in EVALUATORS),
           "test_before", "test_finetuned", "seconds_finetune", "policy")
RANDOM_SPREADS = (0.1, 0.2)  # the random policies' spreads around p, alternately
TOP = 5


def committed_policies(model: str, n_units: int, data: Path = DATA) -> list[tuple[float, list[float]]]:
    """(ratio, policy) of every committed run's best policy on `model` with `n_units` units (which tells the
    residual streams' runs apart), best first, each distinct policy once."""
    seen, found = set(), []
    for path in sorted(data.glob("*-policies.csv.gz")):
        for row in read_csv_gz(path):
            policy = [float(f) for f in row["policy"].split()]
            key = tuple(round(f, 4) for f in policy)
            if row["model"] == model and len(policy) == n_units and key not in seen:
                seen.add(key)
                found.append((float(row["reward_accuracy"]), float(row["ratio"]), policy))
    found.sort(key=lambda f: -f[0])
    return [(ratio, policy) for _, ratio, policy in found]


def candidate_policies(env: gym.Env, model: str, count: int, seed: int = 0) -> list[tuple[str, list[float]]]:
    """`count` policies for `env`'s scenario: the uniform one, then searched and random ones in turn (the
    committed bests of the nearest ratio first, rewritten to fill the budget; random ones around p). The first n
    are the same whatever `count` is, so a study resumed with more policies keeps what it measured."""
    unwrapped = env.unwrapped
    p, n_units = unwrapped.target_ratio, len(unwrapped.units)
    committed = sorted(committed_policies(model, n_units), key=lambda rp: abs(rp[0] - p))
    searched = (("searched", rescale_policy(np.array(policy), ratio, unwrapped, "budget").tolist())
                for ratio, policy in committed)
    rng = np.random.default_rng(seed)
    random = ((f"random {spread:g}", warmup_action(rng, p, spread, (1, n_units))[0].tolist())
              for spread in itertools.cycle(RANDOM_SPREADS))
    policies = [("uniform", uniform_policy(unwrapped.budget))]
    while len(policies) < count:
        policies.append(next(searched, None) or next(random))
        if len(policies) < count:
            policies.append(next(random))
    return policies


class Scenario:
    """One scenario's envs (one per evaluator that prunes), its data splits and the fine-tuning recipe."""

    def __init__(self, model: str, ratio: float, residual_streams: bool, epochs: int, short_steps: int,
                 dataset: str = "fashion-mnist", device: str = "cpu", checkpoint: str | Path | None = None,
                 data_root: str | Path | None = None, **env_settings: Any):
        self.key = {"model": model, "ratio": ratio, "residual_streams": residual_streams, "epochs": epochs,
                    "short_steps": short_steps}
        checkpoint = checkpoint or committed_checkpoint(model, dataset)
        settings = dict(model=model, dataset=dataset, target_ratio=ratio, device=device, checkpoint=checkpoint,
                        data_root=data_root, residual_streams=residual_streams, **env_settings)
        self.env = gym.make(prune_gym.ENV_ID, **settings)
        self.recalibrated = gym.make(prune_gym.ENV_ID, recalibrate_bn=True, **settings)
        self.magnitude = gym.make(prune_gym.ENV_ID, reconstruction="magnitude", recalibrate_bn=True, **settings)
        self.splits = checkpoint_splits(read_checkpoint(checkpoint)[1], dataset, data_root)
        self.device = torch.device(device)
        self.recipe = FinetuneRecipe(epochs=epochs)
        self.short_steps = short_steps

    def _finetune(self, model: torch.nn.Module, recipe: FinetuneRecipe, steps: int | None = None) -> float:
        """Fine-tune `model` in place for `recipe.epochs` epochs of `steps` batches (None: whole epochs); the
        seconds it took."""
        start = time.perf_counter()
        finetune_on_splits(model, self.splits, recipe, self.device, steps, progress=False)
        return time.perf_counter() - start

    def _reward_accuracy(self, model: torch.nn.Module) -> float:
        return accuracy(model, self.splits.reward.batches(500, self.device))

    def measure(self, kind: str, policy: list[float]) -> dict:
        """Every evaluator's score of `policy`, the seconds each took, and the refit network's test accuracy
        before and after the recipe's fine-tune."""
        row: dict = {"kind": kind}
        for name, env in (("refit", self.env), ("refit+bn", self.recalibrated), ("magnitude+bn", self.magnitude)):
            start = time.perf_counter()
            info = play(env, policy)
            row[f"score_{name}"], row[f"seconds_{name}"] = info["accuracy"], time.perf_counter() - start
            if name == "refit":  # the network a user would fine-tune
                row["macs_ratio"] = info["macs_ratio"]
                row["policy"] = " ".join(f"{f:.6f}" for f in info["policy"])  # as kept: whole channels, within budget
                with tempfile.TemporaryDirectory() as tmp:
                    export_slim(env, tmp, info)
                    slim, short = load_slim(tmp).to(self.device), load_slim(tmp).to(self.device)
        seconds = self._finetune(short, FinetuneRecipe(epochs=1), self.short_steps)
        row["score_refit+ft"] = self._reward_accuracy(short)
        row["seconds_refit+ft"] = row["seconds_refit"] + seconds
        row["test_before"] = accuracy(slim, self.splits.test.batches(500, self.device))
        row["seconds_finetune"] = self._finetune(slim, self.recipe)
        row["test_finetuned"] = accuracy(slim, self.splits.test.batches(500, self.device))
        return row


def read_rows(path: Path = FIDELITY) -> list[dict]:
    """The measured policies, numbers as floats; a line cut short by a killed run is left out."""
    if not path.exists():
        return []
    with path.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if None not in r.values() and r["policy"]]
    for r in rows:
        for c in COLUMNS:
            if c.startswith(("score_", "seconds_", "test_")) or c in ("ratio", "macs_ratio"):
                r[c] = float(r[c])
        r["epochs"], r["short_steps"], r["index"] = int(r["epochs"]), int(r["short_steps"]), int(r["index"])
        r["residual_streams"] = r["residual_streams"] == "True"
    return rows


def run(scenario: Scenario, count: int, path: Path = FIDELITY) -> None:
    """Measure the scenario's policies not yet in `path`, appending each row as it is measured."""
    done = {r["index"] for r in read_rows(path) if all(r[k] == v for k, v in scenario.key.items())}
    policies = candidate_policies(scenario.env, scenario.key["model"], count)
    new_file = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, COLUMNS)
        if new_file:
            writer.writeheader()
        for index, (kind, policy) in enumerate(policies):
            if index in done:
                continue
            row = {**scenario.key, "index": index, **scenario.measure(kind, policy)}
            writer.writerow(row)
            f.flush()
            print(f"{index + 1}/{len(policies)} {kind}: refit {100 * row['score_refit']:.2f}%, "
                  f"fine-tuned {100 * row['test_finetuned']:.2f}% ({row['seconds_finetune']:.0f} s)", flush=True)


def kendall_tau(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-b of two score vectors (ties in either count as neither agreeing nor disagreeing)."""
    sx, sy = np.sign(x[:, None] - x[None, :]), np.sign(y[:, None] - y[None, :])
    denominator = np.sqrt((sx ** 2).sum() * (sy ** 2).sum())
    return float((sx * sy).sum() / denominator) if denominator else float("nan")


def tau_interval(x: np.ndarray, y: np.ndarray, seed: int = 0) -> tuple[float, float]:
    """The 90% bootstrap interval of Kendall's tau over the policies."""
    rng = np.random.default_rng(seed)
    samples = [kendall_tau(x[i], y[i]) for i in rng.integers(0, len(x), (quality.RESAMPLES, len(x)))]
    return quality.interval([s for s in samples if not np.isnan(s)])


def top_overlap(x: np.ndarray, y: np.ndarray, k: int = TOP) -> int:
    """How many of the k policies `x` scores highest are among the k `y` scores highest."""
    return len(set(np.argsort(-x)[:k]) & set(np.argsort(-y)[:k]))


def report(rows: list[dict]) -> str:
    """Per scenario and evaluator: Kendall's tau with the fine-tuned test accuracy, its interval, the same among
    the searched policies alone (the ones a search chooses between), the top-5 overlap and the seconds a trial
    costs (median), against the refit's."""
    lines = ["| scenario | policies | evaluator | Kendall's tau with the fine-tuned accuracy | among the searched "
             "policies | top 5 in the fine-tune's top 5 | s/trial | cost against the refit |",
             "|---|---|---|---|---|---|---|---|"]
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["ratio"], r["residual_streams"], r["epochs"], r["short_steps"]), []).append(r)
    for (model, ratio, streams, epochs, steps), group in sorted(groups.items()):
        target = np.array([r["test_finetuned"] for r in group])
        searched = np.array([r["kind"] == "searched" for r in group])
        name = f"{model} {ratio:g}{' streams' if streams else ''}, {epochs}-epoch fine-tune"
        refit_seconds = float(np.median([r["seconds_refit"] for r in group]))
        for evaluator in EVALUATORS:
            scores = np.array([r[f"score_{evaluator}"] for r in group])
            low, high = tau_interval(scores, target)
            seconds = float(np.median([r[f"seconds_{evaluator}"] for r in group]))
            label = f"refit+ft ({steps} steps)" if evaluator == "refit+ft" else evaluator
            among = kendall_tau(scores[searched], target[searched]) if searched.sum() > 1 else float("nan")
            lines.append(f"| {name} | {len(group)} | {label} | {kendall_tau(scores, target):+.2f} [{low:+.2f}, "
                         f"{high:+.2f}] | {among:+.2f} ({searched.sum()}) | {top_overlap(scores, target)} | "
                         f"{seconds:.2f} | {seconds / refit_seconds:.2f}x |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--ratio", type=float, default=0.2)
    parser.add_argument("--residual-streams", action="store_true")
    parser.add_argument("--policies", type=int, default=40)
    parser.add_argument("--epochs", type=int, default=1, help="the fine-tune whose test accuracy is the target")
    parser.add_argument("--short-steps", type=int, default=100, help="the steps of the refit+ft evaluator")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--report", action="store_true", help="print the table from the committed rows")
    add_into_argument(parser)
    args = parser.parse_args()
    if args.report:
        print_or_write(report(read_rows()), args.into, fidelity_markers())
        return
    run(Scenario(args.model, args.ratio, args.residual_streams, args.epochs, args.short_steps, device=args.device),
        args.policies)


if __name__ == "__main__":
    main()
