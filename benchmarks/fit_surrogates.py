"""Fit the surrogate of each shipped network on the committed trials, and measure it on runs it never saw.

The trials are those of the studies in benchmarks/data/ (`<study>-trials.csv.gz`), all of
which pruned the shipped checkpoints with ChannelPrune-v0's default options; the residual
streams study's policies have another unit count and are left out. A policy's accuracy does
not depend on p, so every ratio's trials teach one network's surrogate. A share of each
network's runs is held out: the surrogate is fitted on the others (to the accuracy's logit),
and its fidelity on each task is Spearman's rho between predicted and real accuracy over up
to 1,000 trials of the held-out runs at the task's p whose policies no fitted run played;
over those trials, and over their better half (which a search cares about).

    .venv/bin/python benchmarks/fit_surrogates.py            # writes prune_gym/surrogate/fitted/
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from prune_gym.benchmarks.data_export import DATA, read_csv_gz
from prune_gym.surrogate import AccuracySurrogate, policy_features, surrogate_path
from prune_gym.surrogate.env import shipped_graph
from prune_gym.tasks import TASKS

HELD_OUT_SHARE = 0.15  # of each network's runs
TEST_TRIALS = 1000  # per task, at most
HIDDEN = (128, 128)
STEPS, BATCH, LEARNING_RATE = 8_000, 256, 2e-3  # steps whatever the data's size: a small network's few runs too

Runs = dict[str, tuple[float, np.ndarray, np.ndarray]]  # job -> (p, policies (trials, units), accuracies)


def committed_runs(model: str, units: int, data: Path = DATA) -> Runs:
    """Every committed run of `model` whose policies have `units` fractions, by study and job."""
    runs: dict[str, tuple[float, list, list]] = {}
    for path in sorted(data.glob("*-trials.csv.gz")):
        for row in read_csv_gz(path):
            if "job" not in row or row["model"] != model:
                continue
            policy = [float(x) for x in row["policy"].split()]
            if len(policy) != units:
                continue
            ratio, policies, accuracies = runs.setdefault(f"{row['study']}/{row['job']}", (float(row["ratio"]), [], []))
            policies.append(policy)
            accuracies.append(float(row["accuracy"]))
    return {job: (ratio, np.array(p), np.array(a)) for job, (ratio, p, a) in runs.items()}


def fit(x: np.ndarray, y: np.ndarray, seed: int = 0) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """A ReLU perceptron fitted to y by mean squared error; its weights as (inputs, outputs) matrices, rounded
    to float32 as the package stores them."""
    torch.manual_seed(seed)
    sizes = (x.shape[1], *HIDDEN, 1)
    layers = [torch.nn.Linear(a, b, dtype=torch.float64) for a, b in zip(sizes, sizes[1:])]
    net = torch.nn.Sequential(*[m for layer in layers for m in (layer, torch.nn.ReLU())][:-1])
    inputs, targets = torch.from_numpy(x), torch.from_numpy(y)[:, None]
    optimizer = torch.optim.Adam(net.parameters(), lr=LEARNING_RATE)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, LEARNING_RATE, total_steps=STEPS)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(STEPS):
        batch = torch.randint(len(x), (BATCH,), generator=generator)
        loss = torch.nn.functional.mse_loss(net(inputs[batch]), targets[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    as_stored = lambda t: t.detach().numpy().astype(np.float32).astype(np.float64)  # noqa: E731  (as saved)
    return tuple(as_stored(layer.weight).T for layer in layers), tuple(as_stored(layer.bias) for layer in layers)


def ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 0, ties sharing their mean rank."""
    order = np.argsort(values, kind="stable")
    ranked = np.empty(len(values))
    ranked[order] = np.arange(len(values))
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranked)
    return sums[inverse] / counts[inverse]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def fit_network(model: str, dataset: str, seed: int = 0) -> AccuracySurrogate:
    """The surrogate of the shipped `model`, fitted on all but the held-out runs, with its fidelity by p."""
    graph, meta = shipped_graph(model, dataset)
    runs = committed_runs(model, len(graph.units))
    jobs = sorted(runs)
    rng = np.random.default_rng(seed)
    held_out = set(rng.choice(jobs, size=max(1, round(HELD_OUT_SHARE * len(jobs))), replace=False).tolist())
    fitted = [runs[j] for j in jobs if j not in held_out]
    x = np.concatenate([p for _, p, _ in fitted])
    y = np.concatenate([a for _, _, a in fitted])
    start = time.perf_counter()
    clipped = np.clip(y, 1e-3, 1 - 1e-3)
    weights, biases = fit(policy_features(x), np.log(clipped / (1 - clipped)), seed)  # the accuracy's logit
    seen = {tuple(row) for row in x}
    fidelity = {}
    surrogate = AccuracySurrogate(weights, biases, {})
    for ratio in sorted({t.ratio for t in TASKS.values() if t.model == model and t.dataset == dataset}):
        trials = [(p, a) for j in sorted(held_out) if runs[j][0] == ratio
                  for p, a in zip(runs[j][1], runs[j][2]) if tuple(p) not in seen]
        if not trials:
            continue
        picked = rng.choice(len(trials), size=min(TEST_TRIALS, len(trials)), replace=False)
        policies = np.array([trials[i][0] for i in picked])
        real = np.array([trials[i][1] for i in picked])
        predicted = surrogate.predict(policies)
        better = real >= np.median(real)
        fidelity[f"{ratio:g}"] = {"spearman": round(spearman(predicted, real), 4),
                                  "spearman_better_half": round(spearman(predicted[better], real[better]), 4),
                                  "trials": len(picked),
                                  "runs": sum(1 for j in held_out if runs[j][0] == ratio)}
    meta = {"model": model, "dataset": dataset, "checkpoint_digest": meta["digest"], "hidden": list(HIDDEN),
            "fitted_trials": len(x), "fitted_runs": len(fitted), "held_out_runs": len(held_out),
            "fidelity": fidelity, "fit_seconds": round(time.perf_counter() - start, 1)}
    return AccuracySurrogate(weights, biases, meta)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=sorted({t.model for t in TASKS.values()}))
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for model in args.models:
        surrogate = fit_network(model, args.dataset, args.seed)
        surrogate.save(surrogate_path(model, args.dataset))
        meta = surrogate.meta
        print(f"{model}: fitted on {meta['fitted_trials']} trials of {meta['fitted_runs']} runs in "
              f"{meta['fit_seconds']} s; held-out Spearman " + ", ".join(
                  f"p = {p}: {f['spearman']:.3f}, better half {f['spearman_better_half']:.3f} ({f['trials']} trials of "
                  f"{f['runs']} runs)"
                  for p, f in meta["fidelity"].items()))


if __name__ == "__main__":
    main()
