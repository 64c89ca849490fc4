"""The surrogate tasks: the real task's episodes with a fitted reward, one env or N in one numpy batch."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import prune_gym  # noqa: F401  (registers the tasks)
from prune_gym.agents.config import SearchConfig
from prune_gym.agents.loop import scenario_of, search_to_completion
from prune_gym.benchmarks.data_export import DATA, read_csv_gz
from prune_gym.datasets import DEBIAN_FASHION_MNIST
from prune_gym.errors import PruneGymError
from prune_gym.history import HistoryStore
from prune_gym.surrogate import AccuracySurrogate, load_surrogate, surrogate_path
from prune_gym.surrogate.env import SurrogatePruneVectorEnv
from prune_gym.tasks import SURROGATES, TASKS

SURROGATE = "ChannelPrune-ResNet20-FashionMNIST-p0.2-surrogate-v0"
REAL_DATA = pytest.mark.skipif(not (DEBIAN_FASHION_MNIST / "t10k-images-idx3-ubyte.gz").exists(),
                               reason="needs Debian's dataset-fashion-mnist (scripts/bootstrap.sh --data)")


def test_every_task_has_a_surrogate_twin_that_ranks_unseen_real_policies_as_the_task_does():
    assert set(SURROGATES) == {t.surrogate_id for t in TASKS.values()}
    for env_id, task in SURROGATES.items():
        env = gym.make(env_id)
        check_env(env.unwrapped, skip_render_check=True)
        assert env.unwrapped.target_ratio == task.ratio
        fidelity = load_surrogate(task.model, task.dataset).meta["fidelity"][f"{task.ratio:g}"]
        assert fidelity["spearman"] >= 0.9 and fidelity["trials"] == 1000


def test_the_surrogate_predicts_the_committed_trials_of_the_league():
    rows = [r for r in read_csv_gz(DATA / "league-trials.csv.gz") if r["model"] == "resnet20" and r["seed"] == "0"]
    policies = np.array([[float(x) for x in r["policy"].split()] for r in rows])
    real = np.array([float(r["accuracy"]) for r in rows])
    predicted = load_surrogate("resnet20", "fashion-mnist").predict(policies)
    assert np.corrcoef(predicted, real)[0, 1] > 0.9 and np.abs(predicted - real).mean() < 0.03


@REAL_DATA
def test_an_episode_keeps_the_channels_it_keeps_on_the_real_task():
    """The surrogate's units, wall and observations are the real env's: the same policy, the same transitions."""
    real = gym.make(next(iter(TASKS)), device="cpu").unwrapped
    twin = gym.make(next(iter(TASKS.values())).surrogate_id).unwrapped
    for policy in np.random.default_rng(0).uniform(0, 1, (5, len(real.units))):
        expected, kept = real.simulate(policy.tolist())
        observations, twin_kept = twin.simulate(policy.tolist())
        assert np.array_equal(observations, expected) and np.array_equal(twin_kept, kept)


def test_the_vector_env_plays_the_episodes_of_as_many_separate_envs():
    n = 6
    vector = gym.make_vec(SURROGATE, num_envs=n)
    assert isinstance(vector, SurrogatePruneVectorEnv) and vector.num_envs == n
    singles = [gym.make(SURROGATE) for _ in range(n)]
    actions = np.random.default_rng(1).uniform(-0.2, 1.2, (9, n, 1)).astype(np.float32)  # out of range: clipped
    observations, _ = vector.reset(seed=0)
    for i, env in enumerate(singles):
        assert np.array_equal(env.reset()[0], observations[i])
    for k in range(9):
        observations, rewards, terminated, truncated, info = vector.step(actions[k])
        for i, env in enumerate(singles):
            observation, reward, done, _, single_info = env.step(actions[k, i])
            assert np.array_equal(observation, observations[i]) and done == terminated[i] and not truncated[i]
            assert reward == pytest.approx(rewards[i], abs=1e-12)  # one row or many through the same matmul
            if done:
                assert single_info["macs_ratio"] == pytest.approx(info["macs_ratio"][i], abs=1e-15)
                assert info["macs_ratio"][i] <= 0.2 + 1e-9
                assert single_info["policy"] == info["policy"][i].tolist()
    assert terminated.all() and set(info) == {"accuracy", "macs_ratio", "policy"}
    restarted, rewards, terminated, _, _ = vector.step(actions[0])  # next-step autoreset: a fresh episode
    assert np.array_equal(restarted, vector.reset()[0]) and not terminated.any() and not rewards.any()


def test_a_searcher_searches_a_surrogate_task_into_a_history_apart_from_real_runs(tmp_path):
    task = SURROGATES[SURROGATE]
    env = gym.make(SURROGATE)
    config = SearchConfig(task.model, task.dataset, task.ratio, 20, seed=0, device="cpu", agent="cmaes",
                          checkpoint=str(task.env_kwargs()["checkpoint"]))
    run_id = search_to_completion(config, tmp_path / "history.h5", env=env)
    with HistoryStore(tmp_path / "history.h5") as store:
        run = store.read_run(run_id)
        info = store.run_info(run_id)
    assert run.n_trials == 20 and (run.macs_ratios <= 0.2 + 1e-9).all() and run.accuracies.max() > 0.7
    assert info.scenario.checkpoint_digest == scenario_of(env).checkpoint_digest
    assert info.scenario.checkpoint_digest == "surrogate-" + load_surrogate("resnet20", "fashion-mnist").meta[
        "checkpoint_digest"]  # so no search of the real task takes it for one of its own


def test_bad_input_to_a_surrogate_is_refused(tmp_path):
    with pytest.raises(PruneGymError, match="num_envs must be a whole number"):
        gym.make_vec(SURROGATE, num_envs=0)
    with pytest.raises(PruneGymError, match="takes num_envs; got device"):
        gym.make_vec(SURROGATE, num_envs=2, device="cuda")
    with pytest.raises(PruneGymError, match="takes no option; got device"):
        gym.make(SURROGATE, device="cuda")
    vector = gym.make_vec(SURROGATE, num_envs=2)
    vector.reset()
    with pytest.raises(ValueError, match="must be finite"):
        vector.step(np.array([[0.5], [np.nan]]))
    damaged = tmp_path / "damaged.npz"
    damaged.write_bytes(surrogate_path("resnet20", "fashion-mnist").read_bytes()[:1000])
    with pytest.raises(PruneGymError, match="is not a prune-gym surrogate"):
        AccuracySurrogate.load(damaged)
    with pytest.raises(ValueError, match="has 9 fractions, got 3"):
        load_surrogate("resnet20", "fashion-mnist").predict(np.ones(3))
