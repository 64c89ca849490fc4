"""Pinned behaviour: committed trials, played again on the committed checkpoints, score what the data say.

A refactor of the env, the pruner or a layer kind that changed one channel choice, one refit or one
MACs count would move these accuracies; the committed studies (benchmarks/data/) would then no
longer describe what the code does. Needs the real Fashion-MNIST (the reward split is part of it).

ResNet episodes replay to the digit on any x86 CPU. MobileNet v1's do not: the same channels and
MACs, but its refit's float sums come out otherwise on another CPU or thread count, and its
accuracies move by up to about a point (seen on an AMD EPYC replaying trials scored on an Intel
Xeon). For MobileNet the test pins the channels' MACs exactly and the accuracy within `CROSS_CPU`.
"""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import gymnasium as gym
import pytest

from prune_gym import ENV_ID
from prune_gym.benchmarks.data_export import DATA, ROUNDING
from prune_gym.benchmarks.study import committed_checkpoint
from prune_gym.datasets import DEBIAN_FASHION_MNIST
from prune_gym.policies import play

# (study file, job, trials): each model of the zoo's committed checkpoints, both ratios of the league,
# the residual streams as units, and trials of several origins (warm-up, searcher, assistant).
SAMPLE = [
    ("league", "resnet20-p0.2-baseline-seed0", (0, 150, 299)),
    ("league", "resnet20-p0.3-cmaes-baseline-seed1", (7, 254)),
    ("league-models", "mobilenet_v1-p0.3-tpe-baseline-seed0", (3, 120)),
    ("league-models", "resnet56-p0.2-baseline-seed0", (5, 250)),
    ("streams", "resnet20-p0.2-cmaes-baseline-seed0", (11, 200)),
    ("transfer-models", "mobilenet_v1-p0.3-assistant-seed0-from-resnet20-p0.5-baseline-invariant-seed0", (0, 40)),
]
ENV_OPTIONS = {"streams": {"residual_streams": True}}
CROSS_CPU = {"mobilenet_v1": 0.015}  # accuracy tolerance of a model whose episodes vary with the CPU

pytestmark = pytest.mark.skipif(not (DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz").exists(),
                                reason="needs Debian's dataset-fashion-mnist (scripts/bootstrap.sh --data)")


def committed_rows(study: str, job: str, trials: tuple[int, ...]) -> list[dict[str, str]]:
    with gzip.open(DATA / f"{study}-trials.csv.gz", "rt", newline="") as f:
        rows = [row for row in csv.DictReader(f) if row["job"] == job and int(row["trial"]) in trials]
    assert len(rows) == len(trials), f"{study}: {job} lacks trials {trials}"
    return rows


@pytest.mark.parametrize("study, job, trials", SAMPLE, ids=[f"{s}:{j}" for s, j, _ in SAMPLE])
def test_committed_trials_replay_to_the_same_accuracy_and_macs(study, job, trials):
    rows = committed_rows(study, job, trials)
    model, ratio = rows[0]["model"], float(rows[0]["ratio"])
    checkpoint = committed_checkpoint(model, "fashion-mnist")
    env = gym.make(ENV_ID, model=model, dataset="fashion-mnist", target_ratio=ratio, device="cpu",
                   checkpoint=str(checkpoint), **ENV_OPTIONS.get(study, {}))
    tolerance = CROSS_CPU.get(model, ROUNDING)
    for row in rows:
        info = play(env, [float(x) for x in row["policy"].split()])
        assert abs(info["accuracy"] - float(row["accuracy"])) < tolerance, (job, row["trial"])
        assert abs(info["macs_ratio"] - float(row["macs_ratio"])) < ROUNDING, (job, row["trial"])
    env.close()
