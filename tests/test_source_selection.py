"""Source selection: the early-stopping rule on synthetic learning curves, and a real race of two sources."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from prune_gym.agents.config import SearchConfig
from prune_gym.agents.loop import run_search
from prune_gym.agents.source_selection import last_smoothed, losers, select_source, superiority, window_stats
from prune_gym.errors import PruneGymError
from prune_gym.history import HistoryStore


def noisy(level: np.ndarray, sd: float, seed: int) -> np.ndarray:
    return level + np.random.default_rng(seed).normal(0, sd, len(level))


def test_window_stats_are_the_centred_windows_mean_and_variance():
    curve = np.arange(30, dtype=float) ** 1.5
    mean, var = window_stats(curve, 21)
    assert len(mean) == 10  # complete windows only: centred on trials 11 to 20
    assert mean[0] == pytest.approx(curve[:21].mean()) and var[3] == pytest.approx(curve[3:24].var())


def test_a_clearly_better_curve_stops_the_other_at_the_first_trial_it_is_significantly_superior():
    good, poor = noisy(np.full(60, 0.80), 0.02, 0), noisy(np.full(60, 0.70), 0.02, 1)
    x, gap, spread = superiority(good, poor)
    assert x == 11  # the first complete window is centred on trial 11
    assert gap == pytest.approx(good[:21].mean() - poor[:21].mean()) and gap > spread
    assert superiority(poor, good) is None
    found = losers({"good": good, "poor": poor})
    assert list(found) == ["poor"] and found["poor"].winner == "good"


def test_no_decision_before_min_trials_or_within_the_noise():
    good, poor = noisy(np.full(60, 0.80), 0.02, 0), noisy(np.full(60, 0.70), 0.02, 1)
    assert losers({"good": good[:29], "poor": poor[:29]}) == {}  # fewer than 30 trials each
    # Curves 2 points apart that swing by +-15 points: a spread of about 2 * 0.15^2 = 0.045 covers the gap.
    swing = 0.15 * (-1.0) ** np.arange(100)
    a, b = 0.72 + swing, 0.70 - swing
    assert losers({"a": a, "b": b}) == {}


def test_a_late_overtake_counts_and_superiorities_apply_in_trial_order():
    a = np.r_[np.full(60, 0.70), np.full(40, 0.85)]  # level with B, then clearly above from trial 61
    b = np.full(100, 0.70)
    x, gap, spread = superiority(a, b)
    assert x == 51  # the first window centred there reaches trial 61
    assert gap == pytest.approx(0.15 / 21) and spread == pytest.approx(0.15 ** 2 * (1 / 21) * (20 / 21))
    assert losers({"a": a[:60], "b": b}) == {}  # equal curves: no decision
    found = losers({"a": a, "b": b, "c": np.full(100, 0.50)})
    assert {name: (s.winner, s.trial) for name, s in found.items()} == {"c": ("a", 11), "b": ("a", 51)}
    # B stopped A first (trial 11), so A's later lead stops no one.
    early = losers({"a": a, "b": np.r_[np.full(30, 0.80), np.full(70, 0.70)]})
    assert {name: (s.winner, s.trial) for name, s in early.items()} == {"a": ("b", 11)}


def test_last_smoothed_averages_the_half_window_ending_at_the_last_trial():
    curve = np.r_[np.zeros(20), np.ones(11)]
    assert last_smoothed(curve, 21) == 1.0 and last_smoothed(curve[:-1], 21) == pytest.approx(10 / 11)


@pytest.fixture(scope="module")
def library(tiny_checkpoint, fashion_root, tmp_path_factory):
    """A library with two finished 4-trial baseline runs at p = 0.5: one trained a little longer."""
    config = SearchConfig(ratio=0.5, trials=4, warmup=2, device="cpu", checkpoint=str(tiny_checkpoint),
                          data_root=str(fashion_root), env_kwargs={"calibration_images": 100})
    path = tmp_path_factory.mktemp("library") / "history.h5"
    ids = [run_search(dataclasses.replace(config, seed=seed), path, progress=False).run_id for seed in (0, 1)]
    return config, path, ids


def test_select_source_races_two_processes_and_adds_the_winner_to_the_library(library, tmp_path):
    config, path, ids = library
    target = dataclasses.replace(config, ratio=0.3, method="vanilla", warmup=None, trials=12)
    selection = select_source(target, ids, path, race_trials=10, window=5, min_trials=6, workdir=tmp_path,
                              poll_seconds=0.2, progress=False, backend="processes")
    assert selection.winner in ids and selection.reason
    assert set(selection.curves) == set(ids)
    with HistoryStore(path) as store:
        run = store.read_run(selection.run_id)
    assert run.info.status == "finished" and run.n_trials == 12  # the winner ran on to the full budget
    assert run.info.sources == [selection.winner] and run.info.scenario.target_ratio == 0.3
    assert np.array_equal(run.accuracies[:10], selection.curves[selection.winner][:10])
    for loser, why in selection.stopped.items():
        assert why.winner != loser and len(selection.curves[loser]) >= 6


def test_select_source_refuses_what_it_cannot_race(library, tmp_path):
    config, path, ids = library
    target = dataclasses.replace(config, ratio=0.3, method="vanilla", trials=50)
    with pytest.raises(PruneGymError, match="two different"):
        select_source(target, [ids[0], ids[0]], path, race_trials=40, workdir=tmp_path)
    with pytest.raises(PruneGymError, match="no finished run run-0099"):
        select_source(target, [ids[0], "run-0099"], path, race_trials=40, workdir=tmp_path)
    with pytest.raises(PruneGymError, match="races transfers"):
        select_source(dataclasses.replace(target, method="baseline"), ids, path, race_trials=40, workdir=tmp_path)
    with pytest.raises(PruneGymError, match="at least 30 trials"):
        select_source(target, ids, path, race_trials=20, workdir=tmp_path)


@pytest.fixture(scope="module")
def mixed_library(library, tmp_path_factory):
    """A library of its own: two amc-ddpg seeds at p = 0.5, amc-ddpg at p = 0.2 and random search at p = 0.3."""
    config = library[0]
    path = tmp_path_factory.mktemp("mixed") / "history.h5"
    ids = [run_search(dataclasses.replace(config, seed=seed), path, progress=False).run_id for seed in (0, 1)]
    low = run_search(dataclasses.replace(config, ratio=0.2), path, progress=False).run_id
    other = run_search(dataclasses.replace(config, ratio=0.3, agent="random", warmup=None), path,
                       progress=False).run_id
    return config, path, ids, low, other


def test_auto_sources_are_usable_runs_nearest_first_one_per_scenario(mixed_library):
    from prune_gym.agents.source_choice import choose_sources, distance

    config, path, ids, low, other = mixed_library
    vanilla = dataclasses.replace(config, ratio=0.3, method="vanilla", source="auto", warmup=None)
    chosen = choose_sources(path, vanilla)
    # Vanilla loads weights: only amc-ddpg runs qualify. p = 0.2 is 0.1 below the target; p = 0.5 is 0.2
    # above, which counts twice. The two seeds at 0.5 stand as one candidate, the better one.
    assert [c.run.run_id for c in chosen][0] == low and len(chosen) == 2
    assert chosen[0].distance == pytest.approx(0.1) and chosen[1].distance == pytest.approx(0.4)
    with HistoryStore(path) as store:
        seeds = [r for r in store.find_runs() if r.run_id in ids]
    assert chosen[1].run.run_id == max(seeds, key=lambda r: r.best_accuracy).run_id
    # The assistant takes trials, from any searcher's run: the random search at p = 0.3 is nearest.
    assisted = dataclasses.replace(config, ratio=0.3, agent="tpe", source="auto", assistant={}, warmup=None)
    assert [c.run.run_id for c in choose_sources(path, assisted)][:2] == [other, low]
    other_model = dataclasses.replace(vanilla, model="resnet56")
    assert distance(chosen[0].run, other_model) == pytest.approx(1.1)  # another model: one step further
    assert choose_sources(path.with_name("none.h5"), vanilla) == []


def test_search_with_source_auto_says_what_it_chose_and_records_it(cli, mixed_library, tmp_path):
    config, path, ids, low, other = mixed_library
    common = ("--ratio", "0.3", "--trials", "3", "--checkpoint", config.checkpoint, "--data-root", config.data_root,
              "--device", "cpu", "--tensorboard", "", "--out", str(tmp_path / "slim"))
    library = tmp_path / "library.h5"
    library.write_bytes(path.read_bytes())
    result = cli("search", "--agent", "amc-ddpg", "--method", "vanilla", "--source", "auto", "--history", str(library),
                 *common)
    assert result.returncode == 0, result.stderr
    assert f"source: {low} (resnet20 p = 0.2 on fashion-mnist, amc-ddpg" in result.stdout
    with HistoryStore(library) as store:
        newest = store.find_runs()[-1]
    assert newest.method == "vanilla" and newest.sources == [low]
    listing = cli("history", "ls", "--history", str(library)).stdout
    assert "SOURCE" in listing and any(newest.run_id in line and low in line for line in listing.splitlines())

    empty = tmp_path / "empty.h5"
    result = cli("search", "--method", "vanilla", "--source", "auto", "--history", str(empty), *common)
    assert result.returncode == 0, result.stderr
    assert "searching from scratch" in result.stdout
    with HistoryStore(empty) as store:
        (run,) = store.find_runs()
    assert run.method == "baseline" and run.sources == []
