"""`prune-gym search` as a user runs it: killed and resumed, and refusing bad flags at once."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from prune_gym.history import HistoryStore

PRUNE_GYM = str(Path(sys.executable).with_name("prune-gym"))


@pytest.mark.parametrize("agent", ["amc-ddpg", "sac", "tpe"])
def test_killed_search_resumes_without_losing_or_duplicating_trials(agent, cli, kill_once_committed, tiny_checkpoint,
                                                                   fashion_root, tmp_path):
    """A search drawing on the shipped library by default (amc-ddpg) and two from scratch, killed in a
    process of their own and resumed (in this one)."""
    history = tmp_path / "history.h5"
    scratch = agent != "amc-ddpg"
    args = [PRUNE_GYM, "search", "--agent", agent, "--ratio", "0.5", "--trials", "10", "--warmup", "3", "--seed", "4",
            "--device", "cpu", "--checkpoint", str(tiny_checkpoint), "--data-root", str(fashion_root),
            "--history", str(history), "--out", str(tmp_path / "slim"), "--tensorboard", "",
            *(["--from-scratch"] if scratch else [])]
    kill_once_committed(args, history, 4)
    with HistoryStore(history) as store:
        (before,) = store.find_runs()
        assert before.status == "interrupted" and 4 <= before.n_trials < 10
        snapshot = store.read_run(before.run_id)

    resumed = cli(*args[1:], "--resume", "--plot", str(tmp_path / "curve.png"))
    assert resumed.returncode == 0, resumed.stderr
    assert "best policy" in resumed.stdout and (tmp_path / "slim" / "spec.json").is_file()
    assert (tmp_path / "curve.png").stat().st_size > 0
    with HistoryStore(history) as store:
        (after,) = store.find_runs()  # the same run, not a new one
        run = store.read_run(after.run_id)
    assert after.run_id == before.run_id and after.status == "finished" and run.n_trials == 10
    n = snapshot.n_trials
    assert np.array_equal(run.observations[:n], snapshot.observations)
    assert np.array_equal(run.accuracies[:n], snapshot.accuracies)
    own = "searcher" if agent == "tpe" else "actor"
    first = "warmup" if scratch else "assistant"  # the library's policies first, then the assistant hands over
    assert list(run.origins[:3]) == [first] * 3 and set(run.origins[3:]) <= {first, own}
    assert run.info.settings["agent"] == agent and after.method == ("baseline" if scratch else "library")


def test_resume_with_another_agent_names_the_conflict_and_leaves_the_history(kill_once_committed, tiny_checkpoint,
                                                                           fashion_root, tmp_path):
    history = tmp_path / "history.h5"
    args = [PRUNE_GYM, "search", "--ratio", "0.5", "--trials", "30", "--warmup", "30", "--device", "cpu",
            "--checkpoint", str(tiny_checkpoint), "--data-root", str(fashion_root), "--history", str(history),
            "--tensorboard", "", "--from-scratch"]
    kill_once_committed(args, history, 2)
    before = history.read_bytes()
    result = subprocess.run(args + ["--resume", "--agent", "tpe"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "was interrupted with agent cmaes" in result.stderr and "not tpe" in result.stderr  # the default
    assert len(result.stderr.strip().splitlines()) == 1
    assert history.read_bytes() == before


def test_resume_on_other_weights_or_units_is_refused_and_leaves_the_history(cli, kill_once_committed, tiny_checkpoint,
                                                                           retrained_checkpoint, fashion_root, tmp_path):
    history = tmp_path / "history.h5"
    args = ["search", "--ratio", "0.5", "--trials", "30", "--warmup", "30", "--device", "cpu",
            "--data-root", str(fashion_root), "--history", str(history), "--tensorboard", "", "--from-scratch"]
    kill_once_committed([PRUNE_GYM, *args, "--checkpoint", str(tiny_checkpoint)], history, 2)
    before = history.read_bytes()
    result = cli(*args, "--checkpoint", str(retrained_checkpoint), "--resume")
    assert result.returncode == 2 and "resume it with the checkpoint it started with" in result.stderr
    result = cli(*args, "--checkpoint", str(tiny_checkpoint), "--residual-streams", "--resume")
    assert result.returncode == 2 and "pruned 9 units, this search's env has 10" in result.stderr
    assert history.read_bytes() == before


def test_resume_with_nothing_to_resume_is_a_clear_error(tiny_checkpoint, fashion_root, tmp_path):
    result = subprocess.run([PRUNE_GYM, "search", "--ratio", "0.5", "--resume", "--device", "cpu",
                             "--checkpoint", str(tiny_checkpoint), "--data-root", str(fashion_root),
                             "--history", str(tmp_path / "h.h5"), "--tensorboard", ""],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "no interrupted library run" in result.stderr  # the default search draws on the library


@pytest.mark.parametrize("flags, message", [
    (["--ratio", "1.5"], "argument --ratio: must be in (0, 1]"),
    (["--ratio", "0.3", "--trials", "0"], "argument --trials: must be a positive integer"),
    (["--ratio", "0.3", "--method", "magic"], "argument --method: invalid choice"),
    (["--ratio", "0.3", "--assistant-set", "temperature=2"], "the assistant has no setting 'temperature'"),
    (["--ratio", "0.3", "--assistant-set", "top_n=many"], "assistant setting top_n takes an integer, got 'many'"),
    (["--ratio", "0.3", "--assistant-set", "handover=never"], "assistant setting handover is one of fixed, earned"),
    (["--ratio", "0.3", "--preset", "magic"], "argument --preset: invalid choice: 'magic'"),
    (["--ratio", "0.3", "--method", "history"], "history is a preset, not a method: use --preset history"),
    (["--ratio", "0.3", "--preset", "history", "--method", "vanilla"], "preset history runs method assistant"),
    (["--ratio", "0.3", "--preset", "history"], "a source run is needed by, and only by, the transfer methods"),
    (["--ratio", "0.3", "--rescale", "linear"], "argument --rescale: invalid choice: 'linear'"),
    (["--ratio", "0.3", "--agent", "magic"], "argument --agent: invalid choice: 'magic'"),
    (["--ratio", "0.3", "--agent", "tpe", "--agent-set", "sigma0=0.3"],
     "the tpe searcher has no setting 'sigma0'; its settings: multivariate, n_ei_candidates, warm_start"),
    (["--ratio", "0.3", "--agent-set", "sigma0=big"], "cmaes setting sigma0 takes a number, got 'big'"),
    (["--ratio", "0.3", "--agent", "sac", "--agent-set", "invariant_actor=true"],
     "the sac searcher has no setting 'invariant_actor'"),
    pytest.param(["--ratio", "0.3", "--device", "cuda"], "CUDA is not available",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")),
])
def test_bad_flags_fail_at_once(cli, flags, message):
    start = time.monotonic()
    result = cli("search", *flags)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert time.monotonic() - start < 60  # refused before any data or model is loaded


def test_every_command_that_builds_a_scenario_takes_the_same_scenario_arguments():
    from prune_gym.cli import build_parser
    scenario = ["--model", "resnet56", "--dataset", "cifar10", "--ratio", "0.4", "--budget", "latency",
                "--residual-streams", "--checkpoint", "w.pt", "--data-root", "data", "--device", "cpu"]
    for command, required in (("search", []), ("select-source", ["--candidates", "run-0001", "run-0002"]),
                              ("export", ["--out", "slim"])):
        args = build_parser().parse_args([command, *required, *scenario])
        assert (args.model, args.dataset, args.ratio, args.budget, args.residual_streams, args.checkpoint,
                args.data_root, args.device) == ("resnet56", "cifar10", 0.4, "latency", True, "w.pt", "data", "cpu")
