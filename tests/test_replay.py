"""Pinned behaviour: committed trials, played again on the committed checkpoints, score what the data say.

A refactor of the env, the pruner or a layer kind that changed one channel choice, one refit or one
MACs count would move these accuracies; the committed studies (benchmarks/data/) would then no
longer describe what the code does; a change to how a search is configured that ran a committed job with
other settings would too. The replay needs the real Fashion-MNIST (the reward split is part of it).

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
from prune_gym.benchmarks.data_export import DATA, ROUNDING, settings_text
from prune_gym.benchmarks.study import STUDIES, committed_checkpoint
from prune_gym.datasets import DEBIAN_FASHION_MNIST
from prune_gym.policies import play
from prune_gym.tasks import TASKS, Task

# Per network, (study file, job, trials): each model of the zoo's committed checkpoints, both ratios of the
# league, the residual streams as units, and trials of several origins (warm-up, searcher, assistant). One env
# per network replays every ratio's policies: at the highest ratio the wall clips none of them.
SAMPLE = {
    ("resnet20", False): [("league", "resnet20-p0.2-baseline-seed0", (0, 150, 299)),
                          ("league", "resnet20-p0.3-cmaes-baseline-seed1", (7, 254))],
    ("resnet20", True): [("streams", "resnet20-p0.2-cmaes-baseline-seed0", (11, 200))],
    ("mobilenet_v1", False): [
        ("league-models", "mobilenet_v1-p0.3-tpe-baseline-seed0", (3, 120)),
        ("transfer-models", "mobilenet_v1-p0.3-assistant-seed0-from-resnet20-p0.5-baseline-invariant-seed0", (0, 40))],
    ("resnet56", False): [("league-models", "resnet56-p0.2-baseline-seed0", (5, 250))],
}
CROSS_CPU = {"mobilenet_v1": 0.015}  # accuracy tolerance of a model whose episodes vary with the CPU

REAL_DATA = pytest.mark.skipif(not (DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz").exists(),
                               reason="needs Debian's dataset-fashion-mnist (scripts/bootstrap.sh --data)")


def committed_rows(study: str, job: str, trials: tuple[int, ...]) -> list[dict[str, str]]:
    with gzip.open(DATA / f"{study}-trials.csv.gz", "rt", newline="") as f:
        rows = [row for row in csv.DictReader(f) if row["job"] == job and int(row["trial"]) in trials]
    assert len(rows) == len(trials), f"{study}: {job} lacks trials {trials}"
    return rows


@REAL_DATA
@pytest.mark.parametrize("model, streams", SAMPLE, ids=[f"{m}{'-streams' if s else ''}" for m, s in SAMPLE])
def test_committed_trials_replay_to_the_same_accuracy_and_macs(model, streams):
    rows = [row for study, job, trials in SAMPLE[model, streams] for row in committed_rows(study, job, trials)]
    ratio = max(float(r["ratio"]) for r in rows)
    task = Task(model, "fashion-mnist", ratio)
    if not streams and task.env_id in TASKS:  # a standard task is the committed scenario, its id the way to it
        env = gym.make(task.env_id, device="cpu")
    else:
        env = gym.make(ENV_ID, model=model, dataset="fashion-mnist", target_ratio=ratio, device="cpu",
                       checkpoint=str(committed_checkpoint(model, "fashion-mnist")), residual_streams=streams)
    tolerance = CROSS_CPU.get(model, ROUNDING)
    for row in rows:
        info = play(env, [float(x) for x in row["policy"].split()])
        assert abs(info["accuracy"] - float(row["accuracy"])) < tolerance, (row["job"], row["trial"])
        assert abs(info["macs_ratio"] - float(row["macs_ratio"])) < ROUNDING, (row["job"], row["trial"])
    env.close()


@pytest.mark.parametrize("study", [name for name in STUDIES if (DATA / f"{name}-policies.csv.gz").exists()])
def test_every_committed_run_is_what_its_study_job_resolves_to_today(study):
    """Each committed run's settings, as the data write them, are those its job's search resolves to now."""
    jobs = {job.key: job for job in STUDIES[study].with_seeds(range(10)).jobs()}
    with gzip.open(DATA / f"{study}-policies.csv.gz", "rt", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and {row["job"] for row in rows} <= set(jobs)
    for row in rows:
        job = jobs[row["job"]]
        config = job.config("fashion-mnist", "cpu", None, None, dict(STUDIES[study].env_options))
        resolved = config.resolve(job.source.ratio if job.source else None)
        assert (resolved.label, settings_text(job, resolved.recorded_settings())) == \
            (row["method"], row["agent_settings"]), row["job"]
