"""Every searcher behind one interface, for real, on the tiny trained ResNet-20: the trial loop
records, resumes and feeds history to each of them alike."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

from prune_gym.agents.augmentation import Episode
from prune_gym.agents.checkpoints import SearcherCheckpoints
from prune_gym.agents.config import SearchConfig
from prune_gym.agents.loop import make_env, run_search
from prune_gym.agents.recorder import Trial
from prune_gym.agents.searcher import PolicySearcher, check_settings, parse_setting
from prune_gym.agents.searchers import SEARCHERS, register_searcher, searcher_class
from prune_gym.datasets import DEBIAN_FASHION_MNIST
from prune_gym.errors import PruneGymError
from prune_gym.history import HistoryStore, Run

README = Path(__file__).parents[1] / "README.md"

# Trials of the AMC-style DDPG baseline (p = 0.5, warm-up 2, seed 0) as the code before the searcher
# interface (ef9ca6c) played them on the tiny checkpoint: kept fractions per unit, and the reward-split
# accuracy. The fixture's 4 epochs of training end in other weights on other CPUs, so there is one pin per
# CPU on which it was checked; the first trial, a seeded warm-up policy, tells by its accuracy which applies.
PINS = {
    "CPU box 3, 2026-12-01": (
        [[0.5, 0.5, 0.5625, 0.5, 0.4375, 0.53125, 0.625, 0.59375, 0.25],
         [0.375, 0.4375, 0.5, 0.28125, 0.46875, 0.375, 0.421875, 0.453125, 0.46875],
         [0.75, 0.5, 0.25, 0.75, 1.0, 0.59375, 0.171875, 0.09375, 0.34375],
         [0.6875, 0.125, 0.5, 0.53125, 0.875, 0.71875, 0.796875, 0.265625, 0.0625],
         [0.9375, 0.0625, 0.9375, 0.75, 0.5, 0.8125, 0.140625, 0.25, 0.0625],
         [0.75, 0.75, 0.875, 0.125, 0.375, 0.5, 0.234375, 0.546875, 0.15625]],
        [0.615, 0.625, 0.62, 0.535, 0.545, 0.555]),
    "AMD EPYC 2-core box, 2026-12-02": (
        [[0.5, 0.5, 0.5625, 0.5, 0.4375, 0.53125, 0.625, 0.59375, 0.25],
         [0.375, 0.4375, 0.5, 0.28125, 0.46875, 0.375, 0.421875, 0.453125, 0.46875],
         [0.75, 0.5, 0.25, 0.75, 1.0, 0.59375, 0.171875, 0.09375, 0.34375],
         [0.6875, 0.125, 0.5, 0.5625, 0.875, 0.71875, 0.796875, 0.234375, 0.0625],
         [1.0, 0.0625, 1.0, 0.8125, 0.53125, 0.8125, 0.109375, 0.0625, 0.0625],
         [0.8125, 0.8125, 0.9375, 0.21875, 0.40625, 0.5, 0.25, 0.34375, 0.0625]],
        [0.565, 0.57, 0.58, 0.535, 0.425, 0.535]),
}


@pytest.fixture
def base(tiny_checkpoint, fashion_root) -> SearchConfig:
    return SearchConfig(ratio=0.5, trials=12, warmup=3, seed=0, device="cpu", checkpoint=str(tiny_checkpoint),
                        data_root=str(fashion_root), env_kwargs={"calibration_images": 100})


@pytest.fixture(scope="module")
def shared_env(tiny_checkpoint, fashion_root):
    """One env at p = 0.5 for the searches that need no other ratio (building one costs seconds)."""
    return make_env(SearchConfig(ratio=0.5, device="cpu", checkpoint=str(tiny_checkpoint), data_root=str(fashion_root),
                                 env_kwargs={"calibration_images": 100}))


@pytest.fixture(scope="module")
def invariant_source(tiny_checkpoint, fashion_root, tmp_path_factory) -> tuple[Path, str]:
    """A finished 5-trial AMC-style run at p = 0.5 with the invariant actor: a source for the others."""
    history = tmp_path_factory.mktemp("source") / "library.h5"
    config = SearchConfig(ratio=0.5, trials=5, warmup=2, seed=1, device="cpu", checkpoint=str(tiny_checkpoint),
                          data_root=str(fashion_root), env_kwargs={"calibration_images": 100},
                          agent_kwargs={"invariant_actor": True})
    return history, run_search(config, history, progress=False).run_id


@pytest.mark.skipif(not (DEBIAN_FASHION_MNIST / "train-images-idx3-ubyte.gz").is_file(),
                    reason="the pinned trials were played on Debian's real Fashion-MNIST images")
def test_amc_ddpg_plays_the_trials_it_played_before_the_searcher_interface(base, tmp_path):
    config = dataclasses.replace(base, trials=6, warmup=2)
    run = search_and_read(config, tmp_path)
    assert list(run.origins) == ["warmup"] * 2 + ["actor"] * 4
    any_pin = next(iter(PINS.values()))
    assert np.array_equal(run.actions[:2], np.array(any_pin[0][:2], dtype=np.float32))  # seeded draws: any CPU
    pin = next((pin for pin in PINS.values() if pin[1][0] == run.accuracies[0]), None)
    if pin is None:
        pytest.skip(f"no pin for the checkpoint the fixture trains on this CPU (first accuracy "
                    f"{run.accuracies[0]}); the warm-up trials matched")
    assert np.array_equal(run.actions, np.array(pin[0], dtype=np.float32))
    assert run.accuracies.tolist() == pin[1]


def search_and_read(config: SearchConfig, tmp_path: Path, env=None) -> Run:
    """Run a search in a fresh history file and read its run back."""
    history = tmp_path / f"{config.agent}.h5"
    result = run_search(config, history, progress=False, env=env)
    with HistoryStore(history) as store:
        return store.read_run(result.run_id)


@pytest.mark.parametrize("agent", sorted(SEARCHERS))
def test_every_built_in_searcher_runs_and_is_recorded_by_name(agent, base, shared_env, tmp_path):
    run = search_and_read(dataclasses.replace(base, agent=agent), tmp_path, env=shared_env)
    assert run.n_trials == 12 and run.info.status == "finished"
    assert run.info.settings["agent"] == agent and run.info.settings["warmup"] == 3
    assert list(run.origins) == ["warmup"] * 3 + [SEARCHERS[agent].origin] * 9
    assert np.all(run.macs_ratios <= 0.5 + 1e-9)  # the action wall holds for every searcher
    assert len({tuple(a) for a in run.actions}) > 6  # it explores
    assert ("final" in run.info.weight_tags) == SEARCHERS[agent].takes_weights


def test_warmup_zero_and_the_searchers_own_default(base, shared_env, tmp_path):
    config = dataclasses.replace(base, agent="tpe", trials=2, warmup=0)
    assert list(search_and_read(config, tmp_path, env=shared_env).origins) == ["searcher", "searcher"]
    assert dataclasses.replace(base, agent="tpe", warmup=None).resolve().warmup == 10
    assert dataclasses.replace(base, agent="amc-ddpg", warmup=None).resolve().warmup == 100
    assert dataclasses.replace(base, agent="ppo", warmup=None).resolve().warmup == 0


def test_random_spreads_around_p_or_uniformly(base, shared_env):
    env = shared_env
    around = searcher_class("random")(env, seed=0)
    uniform = searcher_class("random")(env, seed=0, spread="uniform")
    draws = {name: np.concatenate([s._propose(t) for t in range(60)]) for name, s in
             (("normal", around), ("uniform", uniform))}
    assert abs(draws["normal"].mean() - 0.5) < 0.02 and abs(draws["normal"].std() - 0.1) < 0.02
    assert abs(draws["uniform"].std() - 12 ** -0.5) < 0.03
    with pytest.raises(PruneGymError, match="spread is one of normal, uniform"):
        searcher_class("random")(env, spread="wide")


def test_a_warm_up_centered_on_the_uniform_fraction_fills_a_quadratic_budget(base, tmp_path):
    """With the residual streams as units, a layer's MACs grow with two units' fractions: draws around p spend
    about p^2, draws around the uniform policy's fraction about p, for the AMC-style baseline and random."""
    config = dataclasses.replace(base, ratio=0.3, trials=4, warmup=4,
                                 env_kwargs={**base.env_kwargs, "residual_streams": True})
    env = make_env(config)
    spent = {}
    for center in ("p", "uniform"):
        ddpg = search_and_read(dataclasses.replace(config, agent_kwargs={"warmup_center": center}), tmp_path, env)
        spent[center] = ddpg.macs_ratios.mean()
        assert searcher_class("random")(env, center=center).center == searcher_class("amc-ddpg")(
            env, warmup_center=center).warmup_mean
    assert spent["p"] < 0.2 and 0.25 < spent["uniform"] <= 0.3
    with pytest.raises(PruneGymError, match="random setting center is one of p, uniform, got 'mean'"):
        searcher_class("random")(env, center="mean")


def test_the_assistant_acts_for_td3_and_tpe(base, invariant_source, tmp_path):
    library, source = invariant_source
    for agent in ("td3", "tpe"):
        config = dataclasses.replace(base, ratio=0.3, agent=agent, trials=6, warmup=1, source=source,
                                     assistant={"trials": 3, "batch": 3})
        result = run_search(config, tmp_path / f"{agent}.h5", progress=False, library=library)
        with HistoryStore(tmp_path / f"{agent}.h5") as store:
            run = store.read_run(result.run_id)
        own = SEARCHERS[agent].origin
        assert list(run.origins) == ["assistant"] * 3 + [own] * 3, agent  # the warm-up is spent by the assistant
        assert run.info.sources == [source] and run.info.settings["agent"] == agent
        assert run.admitted[0] and np.all(run.macs_ratios <= 0.3 + 1e-9)


def test_augmented_preloads_sac_and_warm_starts_tpe(base, invariant_source, tmp_path):
    library, source = invariant_source
    sac = dataclasses.replace(base, ratio=0.3, agent="sac", method="augmented", trials=3, warmup=None, source=source)
    with pytest.raises(PruneGymError, match="searched by amc-ddpg, this search by sac"):
        run_search(sac, tmp_path / "sac.h5", progress=False, library=library)  # its weights would not fit
    assert not (tmp_path / "sac.h5").exists()

    # A SAC source, then an augmented SAC search from it: its weights, and the source's trials in its buffer.
    sac_source = dataclasses.replace(base, agent="sac", trials=4, warmup=2)
    source_id = run_search(sac_source, library.with_name("sac-library.h5"), progress=False).run_id
    result = run_search(dataclasses.replace(sac, source=source_id), tmp_path / "sac.h5", progress=False,
                        library=library.with_name("sac-library.h5"))
    with HistoryStore(tmp_path / "sac.h5") as store:
        run = store.read_run(result.run_id)
    assert list(run.origins) == ["actor"] * 3 and run.info.method == "augmented"
    env = make_env(sac)
    saved, trials, _ = SearcherCheckpoints(tmp_path / "sac.h5", result.run_id).load(searcher_class("sac"), env)
    assert trials == 3 and saved.agent.replay_buffer.size() == (4 + 3) * len(env.unwrapped.units)

    tpe = dataclasses.replace(sac, agent="tpe", trials=4, agent_kwargs={"warm_start": 2})
    result = run_search(tpe, tmp_path / "tpe.h5", progress=False, library=library, env=env)
    with HistoryStore(tmp_path / "tpe.h5") as store, HistoryStore(library) as sources:
        run = store.read_run(result.run_id)
        best_source = sources.read_run(source).accuracies.max()
    assert list(run.origins) == ["history"] * 2 + ["searcher"] * 2  # the source's two best, rewritten, first
    assert run.info.settings["agent_kwargs"] == {"warm_start": 2} and best_source > 0


@pytest.mark.parametrize("start", ["p", "warm_start_cma", "x0_top"])
def test_warm_started_cma_es_starts_from_the_sources_best_trials(shared_env, start):
    """Warm Starting CMA-ES, or CMA-ES at the mean of the source's 5 best: the first generation centres on the
    source's best policies, not on p."""
    units = len(shared_env.unwrapped.units)
    rng = np.random.default_rng(0)
    episodes = [Episode(np.zeros((units + 1, 3)), np.clip(rng.normal(center, 0.02, units), 0, 1), accuracy, accuracy)
                for center, accuracy, n in ((0.85, 0.9, 10), (0.3, 0.5, 30)) for _ in range(n)]
    settings = {"p": {}, "warm_start_cma": {"warm_start_cma": True}, "x0_top": {"x0_top": 5}}[start]
    searcher = searcher_class("cmaes")(shared_env, seed=0, warm_start=0, **settings)
    searcher.preload(episodes)
    policies = []
    for t in range(8):  # the first generation: each told before the next is asked
        policies.append(searcher._propose(t))
        searcher.study.tell(searcher._asked, 0.5)
    centre = shared_env.unwrapped.target_ratio if start == "p" else 0.85  # x0: p in every unit, or the sources'
    assert abs(np.mean(policies) - centre) < 0.1


def test_cma_es_with_x0_top_starts_at_the_best_policies_the_search_played_before_it(shared_env):
    """Trials played before CMA-ES samples (the assistant's, the warm-up's) move its first generation to their
    best policies' mean, away from the source's."""
    units = len(shared_env.unwrapped.units)
    searcher = searcher_class("cmaes")(shared_env, seed=0, warm_start=0, x0_top=3)
    searcher.preload([Episode(np.zeros((units + 1, 3)), np.full(units, 0.85), 0.9, 0.9) for _ in range(5)])
    for fraction, accuracy in ((0.2, 0.8), (0.25, 0.81), (0.3, 0.79), (0.9, 0.1), (0.6, 0.3)):
        searcher.learn(Trial(np.zeros((units, 3)), np.full(units, fraction), accuracy, accuracy, 0.3, "assistant",
                             1.0, np.zeros(3)))
    policies = []
    for t in range(8):
        policies.append(searcher._propose(t))
        searcher.study.tell(searcher._asked, 0.5)
    assert abs(np.mean(policies) - 0.25) < 0.1  # the mean of the three best played, not the source's 0.85


@pytest.mark.parametrize("changes, message", [
    ({"agent": "magic"}, "unknown agent 'magic'; choose one of: amc-ddpg, cmaes, ppo, random, sac, td3, tpe"),
    ({"agent_kwargs": {"temperature": 2}}, "the amc-ddpg searcher has no setting 'temperature'; its settings: "),
    ({"agent_kwargs": {"sigma0": "big"}}, "amc-ddpg setting sigma0 takes a number, got 'big'"),
    ({"agent": "tpe", "method": "vanilla", "source": "run-0001"}, "the tpe searcher has none"),
    ({"agent": "ppo", "method": "augmented", "source": "run-0001"}, "learns only from its own"),
])
def test_bad_searches_are_refused_before_the_history_is_touched(base, tmp_path, changes, message):
    with pytest.raises(PruneGymError, match=re.escape(message)):
        run_search(dataclasses.replace(base, **changes), tmp_path / "h.h5", progress=False)
    assert not (tmp_path / "h.h5").exists()


def test_settings_parse_as_their_defaults_type():
    cls = searcher_class("amc-ddpg")
    assert parse_setting(cls, "sigma0=0.3") == ("sigma0", 0.3)
    assert parse_setting(cls, "net_arch=64,64") == ("net_arch", [64, 64])
    assert parse_setting(cls, "invariant_actor=true") == ("invariant_actor", True)
    assert parse_setting(cls, "warmup_sigma=none") == ("warmup_sigma", None)
    assert parse_setting(searcher_class("random"), "spread=uniform") == ("spread", "uniform")
    for text, message in (("batch_size=1.5", "takes an integer"), ("tau", "NAME=VALUE"),
                          ("invariant_actor=yes", "true or false"), ("sigma0=none", "takes a number")):
        with pytest.raises(PruneGymError, match=message):
            parse_setting(cls, text)
    with pytest.raises(PruneGymError, match="takes an integer"):
        check_settings(cls, {"batch_size": True})


def test_the_readme_custom_searcher_is_recorded_and_resumed(base, shared_env, tmp_path):
    code = README.read_text().split("<!-- custom searcher -->")[1].split("```python\n")[1].split("```")[0]
    namespace: dict = {}
    exec(code.split("# Then search with it")[0], namespace)
    greedy = namespace["GreedySearcher"]
    assert SEARCHERS["greedy"] is greedy and issubclass(greedy, PolicySearcher)
    with pytest.raises(PruneGymError, match="already registered"):
        register_searcher(type("Other", (PolicySearcher,), {"name": "greedy"}))
    config = dataclasses.replace(base, agent="greedy", trials=8, warmup=2)
    history = tmp_path / "greedy.h5"

    def interrupt(self, trial):  # a crash after the fifth trial is committed
        if trial == 5:
            raise KeyboardInterrupt
        return original(self, trial)

    original = greedy.begin_trial
    greedy.begin_trial = interrupt
    try:
        with pytest.raises(KeyboardInterrupt):
            run_search(config, history, progress=False, env=shared_env)
    finally:
        greedy.begin_trial = original
    with HistoryStore(history) as store:
        (before,) = store.find_runs()
        snapshot = store.read_run(before.run_id)
    assert before.status == "interrupted" and before.n_trials == 5
    result = run_search(config, history, resume=True, progress=False, env=shared_env)
    with HistoryStore(history) as store:
        run = store.read_run(result.run_id)
    assert result.run_id == before.run_id and run.n_trials == 8 and run.info.settings["agent"] == "greedy"
    assert np.array_equal(run.actions[:5], snapshot.actions)
    assert list(run.origins) == ["warmup"] * 2 + ["searcher"] * 6
    assert run.accuracies[2:].max() >= run.accuracies[2]  # it keeps the best move it found
    SEARCHERS.pop("greedy")
