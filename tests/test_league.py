"""The standard tasks, the league a searcher of anyone's can enter, and the check of a submitted policy."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import prune_gym  # noqa: F401  (registers the tasks)
from prune_gym.agents.entry import load_searcher, sb3_searcher
from prune_gym.agents.recorder import play_trial
from prune_gym.agents.searchers import SEARCHERS
from prune_gym.benchmarks.data_export import read_csv_gz
from prune_gym.datasets import DEBIAN_FASHION_MNIST
from prune_gym.errors import PruneGymError
from prune_gym.league import league_reference
from prune_gym.policies import play, uniform_policy
from prune_gym.tasks import TASKS

REAL_DATA = pytest.mark.skipif(not (DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz").exists(),
                               reason="needs Debian's dataset-fashion-mnist (scripts/bootstrap.sh --data)")
TASK = "ChannelPrune-ResNet20-FashionMNIST-p0.2-v0"

# A user's own searcher, in a file of theirs: the best policy so far, each fraction nudged by noise.
NUDGE = '''
import numpy as np
from prune_gym.agents.searcher import PolicySearcher


class Nudge(PolicySearcher):
    settings_defaults = {"sigma": 0.1}

    def __init__(self, env, **kwargs):
        super().__init__(env, **kwargs)
        self.best, self.best_accuracy = np.full(self.n_units, self.target_ratio), -1.0

    def _propose(self, trial):
        return np.clip(self.best + self.rng.normal(0, self.settings["sigma"], self.n_units), 0, 1)

    def learn(self, trial):
        if trial.accuracy > self.best_accuracy:
            self.best, self.best_accuracy = np.array(trial.actions), trial.accuracy
'''


@REAL_DATA
def test_every_task_is_registered_holds_league_searches_and_builds():
    for env_id, task in TASKS.items():
        assert gym.spec(env_id).kwargs == {"task_id": env_id}
        reference = league_reference(task)
        assert {"amc-ddpg", "random", "tpe"} <= set(reference.curves)
        assert reference.best_known >= max(c.max() for curves in reference.curves.values() for c in curves)
    # test_replay.py plays committed trials through the tasks at ResNet-20 0.3, MobileNet v1 0.3, ResNet-56 0.2
    env = gym.make(TASK, device="cpu")
    info = play(env, uniform_policy(env.unwrapped.budget))
    assert env.unwrapped.target_ratio == 0.2 and info["macs_ratio"] <= 0.2 and info["accuracy"] > 0.5


def test_a_task_refuses_an_option_that_makes_another_task():
    with pytest.raises(PruneGymError, match="fixes target_ratio"):
        gym.make(TASK, target_ratio=0.5)


@REAL_DATA
def test_a_searcher_in_a_users_file_enters_the_league_and_its_best_policy_validates(cli, tmp_path, monkeypatch):
    (tmp_path / "nudge.py").write_text(NUDGE)
    monkeypatch.chdir(tmp_path)
    done = cli("league", "--agent", "nudge.py:Nudge", "--tasks", TASK, "--seeds", "0", "--trials", "20",
               "--out", "entry", "--device", "cpu")
    assert done.returncode == 0, done.stderr
    table = done.stdout[done.stdout.index("| searcher"):]
    rows = {line.split(" | ")[0].strip("| *"): line for line in table.splitlines()[2:] if line.startswith("|")}
    assert set(rows) >= {"Nudge** (yours)", "cmaes", "tpe", "amc-ddpg", "random", "sac", "td3", "ppo"}
    mine = rows["Nudge** (yours)"].split(" | ")
    assert mine[1] == "1" and mine[2] != "-" and mine[3:6] == ["-", "-", "-"]  # b(10) only: 20 trials

    trials = read_csv_gz(tmp_path / "entry" / "league-Nudge.csv.gz")
    assert len(trials) == 20 and {row["task"] for row in trials} == {TASK}
    best = max(trials, key=lambda row: float(row["accuracy"]))
    (tmp_path / "best.txt").write_text(best["policy"])
    checked = cli("validate", "best.txt", "--task", TASK, "--device", "cpu")
    assert checked.returncode == 0, checked.stderr
    assert f"MACs ratio {float(best['macs_ratio']):.4f}" in checked.stdout
    assert f"accuracy {100 * float(best['accuracy']):.2f}% on the reward split" in checked.stdout

    rerun = cli("league", "--agent", "nudge.py:Nudge", "--tasks", TASK, "--seeds", "0", "--trials", "20",
                "--out", "entry", "--device", "cpu")  # the recorded search is read back, not played again
    assert rerun.returncode == 0 and "search run-0001" not in rerun.stderr and rows["cmaes"] in rerun.stdout


@REAL_DATA
def test_validate_refuses_a_policy_of_the_wrong_length_or_over_budget(cli, tmp_path):
    (tmp_path / "short.txt").write_text("0.5 0.5 0.5")
    done = cli("validate", str(tmp_path / "short.txt"), "--task", TASK, "--device", "cpu")
    assert done.returncode == 2 and "has 3 fractions" in done.stderr and "9 units" in done.stderr
    (tmp_path / "whole.json").write_text("[" + ", ".join(["1.0"] * 9) + "]")
    done = cli("validate", str(tmp_path / "whole.json"), "--task", TASK, "--device", "cpu")
    assert done.returncode == 2 and "over budget: it keeps 1.0000 of the MACs" in done.stderr


@pytest.mark.parametrize("args, message", [
    (("league", "--agent", "missing.py:Nudge", "--tasks", TASK), "no file missing.py"),
    (("league", "--agent", "no_such_module:Nudge", "--tasks", TASK), "no module no_such_module"),
    (("league", "--agent", "prune_gym.agents.searcher:Nope", "--tasks", TASK), "has no class 'Nope'"),
    (("league", "--agent", "prune_gym.tasks:Task", "--tasks", TASK), "not a Searcher subclass"),
    (("league", "--agent", "tpe", "--tasks", "ChannelPrune-Nope-v0"), "unknown task 'ChannelPrune-Nope-v0'"),
    (("validate", "policy.txt", "--task", "ChannelPrune-Nope-v0"), "unknown task 'ChannelPrune-Nope-v0'"),
    (("validate", "policy.txt", "--task", TASK), "cannot read policy.txt"),
])
def test_bad_input_gets_one_line(cli, tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    done = cli(*args)
    assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_an_sb3_algorithm_becomes_a_searcher_once():
    from stable_baselines3 import A2C, TD3

    assert load_searcher("stable_baselines3:TD3") is SEARCHERS["td3"]  # the built-in one
    a2c = load_searcher("stable_baselines3:A2C")
    assert a2c.name == "a2c" and a2c.algorithm is A2C and load_searcher("stable_baselines3:A2C") is a2c
    assert sb3_searcher(TD3).default_warmup == 10


def test_an_sb3_algorithm_plays_and_learns(make_env):
    from stable_baselines3 import A2C

    env = make_env()
    searcher = load_searcher("stable_baselines3:A2C")(env, seed=0)
    for t in range(2):
        trial = play_trial(env, searcher, t)
        searcher.learn(trial)
    assert isinstance(searcher.agent, A2C) and np.isfinite(trial.accuracy)
