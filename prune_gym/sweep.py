"""A ratio sweep: one search per MACs budget, and the trade-off curve of the models they found.

Practitioners ask for the curve, not one point: how much accuracy each budget costs. A sweep
runs one search per budget in the order given, each drawing on the nearest usable run of the
sweep's history file (its earlier budgets), the user's libraries and the library that ships,
whichever holds it: a budget the library lacks starts from the sweep's nearest earlier one,
a budget it holds from its runs there. Each budget's best policy is exported as
`prune-gym search --out` exports one, then scored on the test split and timed; so are the two
things a user would pick instead at the same budget: the uniform policy (pruned and refit by
the env) and, when it is installed, Torch-Pruning's uniform magnitude pruning.

A sweep keeps its state in `sweep.json` in its folder: the source each budget's search took
(chosen once, so that a rerun resumes the same search however the history has grown since)
and each finished point. Run again after a crash, it skips the finished budgets and resumes
the interrupted search from its last recorded trial.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
from torch import nn

from prune_gym.alternatives import torch_pruning_at_macs, torch_pruning_available, unit_layers
from prune_gym.errors import PruneGymError
from prune_gym.evaluation import accuracy
from prune_gym.export import export_slim, load_slim, measure_export
from prune_gym.history import HistoryStore
from prune_gym.macs import count_macs
from prune_gym.policies import play, uniform_policy
from prune_gym.speed import measure_speed

STATE_FILE = "sweep.json"
TEST_BATCH = 500


@dataclass(frozen=True)
class Model:
    """One network of the curve: test accuracy (before any fine-tuning), MACs against the original's, and its
    batch-1 latency on this machine's CPU, one thread."""

    test_accuracy: float
    macs_ratio: float
    latency_ms: float


@dataclass(frozen=True)
class SweepPoint:
    """One budget's searched model and the alternatives at that budget (`torch_pruning` None where Torch-Pruning
    is not installed)."""

    ratio: float
    run_id: str
    best_trial: int
    reward_accuracy: float  # the search's own measure: accuracy on the reward split
    searched: Model
    uniform: Model
    torch_pruning: Model | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SweepPoint:
        models = {k: Model(**data[k]) if data[k] else None for k in ("searched", "uniform", "torch_pruning")}
        return cls(**{**data, **models})


class SweepState:
    """What `sweep.json` holds: what is swept (`what`: the model, searcher, trials...), the original's measures,
    each budget's source and each finished point. A folder holds one sweep: another is refused."""

    def __init__(self, folder: Path, what: dict[str, Any]):
        self.path = Path(folder) / STATE_FILE
        data = json.loads(self.path.read_text()) if self.path.exists() else {}
        if data and data.get("what") != what:
            raise PruneGymError(f"{folder} holds another sweep ({data.get('what')}); continue it with the same "
                                f"arguments or choose another --out")
        self.what = what
        self.original = Model(**data["original"]) if data.get("original") else None
        self.sources: dict[str, dict[str, str | None]] = data.get("sources", {})
        self.points = {key: SweepPoint.from_json(p) for key, p in data.get("points", {}).items()}

    def save(self) -> None:
        """Written whole and moved into place: a crash leaves the old state or the new, never half."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"what": self.what, "original": self.original and asdict(self.original), "sources": self.sources,
                "points": {key: asdict(p) for key, p in self.points.items()}}
        part = self.path.with_suffix(".part")
        part.write_text(json.dumps(data, indent=2))
        os.replace(part, self.path)


def budget_key(ratio: float) -> str:
    """How a budget is named in the state and its export folder."""
    return f"p{ratio:g}"


def assess(slim: nn.Module, original: nn.Module, env: gym.Env) -> Model:
    """A slim network's test accuracy, MACs ratio and CPU latency at batch 1 with one thread: with two, a small
    network's batch-1 latency swings between runs by 2x on the 2-core machine, more than pruning changes it."""
    workload, device = env.unwrapped.workload, env.unwrapped.device
    shape = workload.input_shape
    test = accuracy(slim.to(device), workload.test.batches(TEST_BATCH, device))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        latency = measure_speed(slim, shape, "cpu").latency_ms
    finally:
        torch.set_num_threads(threads)
    return Model(test, count_macs(slim, shape) / count_macs(original, shape), latency)


def measure_point(env: gym.Env, history: Path, run_id: str, out: Path) -> SweepPoint:
    """Export the best policy of run `run_id` into `out` and assess it beside the uniform policy's model and
    Torch-Pruning's at the same MACs (`env` is the search's)."""
    with HistoryStore(history) as store:
        run = store.read_run(run_id)
    best_trial = run.best_trial()
    original = env.unwrapped.workload.model.cpu().eval()
    info = play(env, run.best_policy().tolist())
    export_slim(env, out, info, source_run={"history": str(Path(history).resolve()), "run_id": run_id})
    measure_export(out, original, env.unwrapped.device)
    searched_model = load_slim(out)
    searched = assess(searched_model, original, env)
    play(env, uniform_policy(env.unwrapped.budget))
    export_slim(env, out / "uniform")
    uniform = assess(load_slim(out / "uniform"), original, env)
    alternative = None
    if torch_pruning_available():
        shape = env.unwrapped.workload.input_shape
        pruned = torch_pruning_at_macs(original, shape, count_macs(searched_model.cpu(), shape), "units",
                                       unit_layers(env))
        alternative = assess(pruned, original, env)
    return SweepPoint(env.unwrapped.target_ratio, run_id, best_trial, float(run.accuracies[best_trial]), searched,
                      uniform, alternative)


def measure_original(env: gym.Env) -> Model:
    original = env.unwrapped.workload.model.cpu().eval()
    return assess(original, original, env)


def points_table(points: list[SweepPoint], original: Model) -> str:
    """The curve as text: one line per budget, the searched model against the alternatives."""
    lines = [f"original: test {100 * original.test_accuracy:.2f}%, {original.latency_ms:.2f} ms",
             "p      run        test (searched / uniform / Torch-Pruning)   MACs ratio   latency ms (searched / uniform)"]
    for p in points:
        tp = "-" if p.torch_pruning is None else f"{100 * p.torch_pruning.test_accuracy:.2f}%"
        lines.append(f"{p.ratio:<6g} {p.run_id:<10} {100 * p.searched.test_accuracy:6.2f}% / "
                     f"{100 * p.uniform.test_accuracy:6.2f}% / {tp:>7}        {p.searched.macs_ratio:.3f}        "
                     f"{p.searched.latency_ms:.2f} / {p.uniform.latency_ms:.2f}")
    return "\n".join(lines)
