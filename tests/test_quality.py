"""Version 2 of the measuring rule on synthetic curves whose answers are known, and the report built
on it from a real compressed data file."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest

from prune_gym.agents.presets import Preset
from prune_gym.benchmarks import quality
from prune_gym.benchmarks.compare import compare
from prune_gym.benchmarks.convergence import first_reach, smoothed_mean
from prune_gym.benchmarks.data_export import TRIAL_COLUMNS, read_csv_gz, write_csv_gz
from prune_gym.benchmarks.report import load_runs, scenarios, write_report
from prune_gym.benchmarks.study import STUDIES, Job
from prune_gym.errors import PruneGymError

RNG = np.random.default_rng(0)


def climbing(n: int, start: float, end: float, noise: float = 0.0, seed: int = 0) -> np.ndarray:
    """A per-trial curve rising linearly from start to end, with seeded noise."""
    return np.linspace(start, end, n) + np.random.default_rng(seed).normal(0, noise, n)


def test_best_so_far_is_the_running_maximum_averaged_over_seeds():
    seeds = [np.array([0.5, 0.7, 0.6, 0.8]), np.array([0.6, 0.6, 0.9, 0.7, 0.95])]
    assert quality.best_so_far(seeds).tolist() == [[0.5, 0.7, 0.7, 0.8], [0.6, 0.6, 0.9, 0.9]]
    assert quality.mean_best_so_far(seeds).tolist() == pytest.approx([0.55, 0.65, 0.8, 0.85])
    assert quality.quality(seeds) == pytest.approx(0.85)  # over the trials both seeds have
    mean, (low, high) = quality.best_so_far_at(seeds, 2)
    assert mean == pytest.approx(0.65) and 0.6 <= low <= mean <= high <= 0.7


def test_time_to_quality_is_the_first_budget_within_half_a_point():
    baseline = [climbing(300, 0.80, 0.87, seed=s) for s in range(5)]
    target = quality.quality(baseline)
    assert target == pytest.approx(0.87)
    t_q = quality.time_to_quality(baseline, target)
    b = quality.mean_best_so_far(baseline)
    assert b[t_q - 1] >= target - 0.005 > b[t_q - 2]
    assert quality.time_to_quality([np.full(300, 0.80)], target) is None


def test_a_method_three_times_faster_has_a_speed_up_of_three_with_an_interval_around_it():
    baseline = [np.minimum(climbing(300, 0.80, 0.90), 0.87) + s * 1e-4 for s in range(5)]
    fast = [np.minimum(climbing(100, 0.80, 0.90), 0.87) for _ in range(5)]
    fast = [np.concatenate([f, np.full(200, 0.87)]) for f in fast]
    point, (low, high) = quality.speed_up(baseline, fast)
    target = quality.quality(baseline)
    assert point == quality.time_to_quality(baseline, target) / quality.time_to_quality(fast, target)
    assert 2.8 < point < 3.2 and low <= point <= high

    noisy = [climbing(300, 0.80, 0.87, noise=0.01, seed=s) for s in range(5)]
    point, (low, high) = quality.speed_up(noisy, noisy)
    assert point == 1.0 and low < 1.0 < high  # the same runs: 1x, and the seeds' spread around it


def test_a_method_that_never_reaches_the_quality_has_no_speed_up():
    baseline = [climbing(300, 0.80, 0.87, seed=s) for s in range(5)]
    point, interval = quality.speed_up(baseline, [np.full(300, 0.82)] * 5)
    assert point is None and interval is None


def test_a_race_to_another_rows_quality_takes_its_mark_from_that_row():
    # TPE from scratch and with history racing to the AMC-style baseline's Q* (0.84), below both their ends
    amc = [np.minimum(climbing(300, 0.80, 0.90), 0.84) + s * 1e-4 for s in range(5)]
    scratch = [np.minimum(climbing(300, 0.80, 0.90), 0.87) + s * 1e-4 for s in range(5)]
    with_history = [np.concatenate([np.minimum(climbing(60, 0.83, 0.90), 0.87), np.full(240, 0.87)])] * 5
    point, (low, high) = quality.speed_up(scratch, with_history, reference=amc)
    q_star = quality.quality(amc)
    assert point == quality.time_to_quality(scratch, q_star) / quality.time_to_quality(with_history, q_star)
    assert point != quality.speed_up(scratch, with_history)[0]  # not the race to scratch's own end
    assert 15 < point < 30 and low <= point <= high

    # A searcher that never reaches the mark from scratch gives no speed-up to claim, nor an interval, even
    # where some resamples of its seeds would reach it (here those drawing the last seed often)
    below = [np.full(300, 0.82)] * 5
    assert quality.speed_up(below, with_history, reference=amc) == (None, None)
    mark = quality.quality(amc) - quality.TOLERANCE
    short = [np.minimum(climbing(300, 0.80, 0.90), mark + d) for d in (-0.001,) * 4 + (0.003,)]
    assert quality.time_to_quality(short, quality.quality(amc)) is None
    assert quality.speed_up(short, with_history, reference=amc) == (None, None)


def test_a_curve_that_touches_the_mark_once_has_not_converged():
    baseline = [np.full(300, 0.86)]
    a_star = quality.converged_accuracy(baseline)
    touch = np.full(300, 0.80)
    touch[50] = 0.95  # one lucky trial; its EMA stays above the mark for a trial or two
    assert first_reach(smoothed_mean([touch]), a_star) == 51  # version 1 calls this converged
    assert quality.converged_at([touch], a_star) is None
    settles = np.concatenate([np.full(100, 0.80), np.full(200, 0.86)])
    assert quality.converged_at([settles], a_star) == 104  # the EMA (0.5) is within 0.5 pp 4 trials later
    late = np.concatenate([np.full(280, 0.80), np.full(20, 0.86)])
    assert quality.converged_at([late], a_star) is None  # 20 trials near A* are not 30


def test_headroom_is_the_quality_over_thirty_random_policies():
    random = [np.concatenate([np.full(29, 0.84), [0.855], np.full(270, 0.86)])] * 3
    assert quality.headroom(0.87, random) == pytest.approx(0.015)
    assert quality.informative(0.015) and not quality.informative(0.009)


def test_a_difference_of_best_so_far_has_an_interval_and_a_verdict():
    better = [climbing(300, 0.80, 0.87, noise=0.003, seed=s) + 0.01 for s in range(5)]
    worse = [climbing(300, 0.80, 0.87, noise=0.003, seed=10 + s) for s in range(5)]
    difference = quality.difference_at(better, worse, 100)
    mean, (low, high) = difference
    assert low <= mean <= high and 0.005 < mean < 0.015 and quality.verdict(difference) == "beats"
    assert quality.verdict(quality.difference_at(worse, better, 100)) == "loses to"
    assert quality.verdict(quality.difference_at(worse, worse, 100)) == "ties with"


def test_the_worst_shortfall_is_the_lowest_gap_of_best_so_far_from_trial_30_on():
    baseline = [np.full(300, 0.80)]
    dip = np.full(300, 0.80)
    dip[:40] = 0.70  # 10 points short until trial 40, level after
    assert quality.worst_shortfall(baseline, [dip]) == (pytest.approx(-0.10), 30)
    assert quality.worst_shortfall(baseline, [dip], start=41) == (pytest.approx(0.0), 41)
    climbing_later = [climbing(300, 0.76, 0.84)]  # its b(T) passes the baseline's somewhere after trial 30
    gap, at = quality.worst_shortfall(baseline, climbing_later)
    assert at == 30 and gap < -0.005
    with pytest.raises(ValueError, match="fewer than the first budget"):
        quality.worst_shortfall(baseline, [np.full(20, 0.9)])


def test_the_guard_compares_mean_test_accuracies_within_half_a_point():
    assert quality.guard_holds([0.860, 0.866], [0.866, 0.867])
    assert not quality.guard_holds([0.850, 0.855], [0.866, 0.867])


def test_history_pays_at_three_times_faster_with_the_interval_over_one_and_a_half_and_the_guard_held():
    assert quality.pays(3.0, (1.6, 5.0), True)
    assert not quality.pays(2.9, (1.6, 5.0), True)  # not fast enough
    assert not quality.pays(6.0, (1.5, 9.0), True)  # the interval reaches 1.5x
    assert not quality.pays(6.0, (2.0, 9.0), False)  # the guard failed
    assert not quality.pays(None, None, None)  # never reached the quality
    assert not quality.pays(3.0, None, True)  # one seed: no interval to lie above 1.5x


def write_trials(path, runs, method: str = "baseline", source: str = "-", append: bool = False,
                 variant: str | None = None, settings: str = "-") -> None:
    """A trials data file of `runs`: (agent, seed, device kind, per-trial accuracies, test offset), all of
    `method` (under the name `variant`, with `settings`) from `source`; after the runs the file holds already,
    if `append`."""
    rows = [[r[c] for c in TRIAL_COLUMNS] for r in read_csv_gz(path)] if append else []
    for agent, seed, kind, accuracies, test_offset, ratio in runs:
        best = np.maximum.accumulate(accuracies)
        records = {0, *(np.flatnonzero(best[1:] > best[:-1]) + 1)}
        job = Job("resnet20", ratio, method, seed, len(accuracies), agent=agent,
                  preset=Preset(variant, method) if variant else None).key
        if source != "-":
            job += "-from-" + Job("resnet20", float(source.split()[1]), "baseline", 0, 300).key
        rows += [["league", job, "resnet20", ratio, source, method, agent, settings, seed, kind, t, f"{a:.6f}", "0.3",
                  "warmup" if t < 10 else "searcher", "1.5", f"{a + test_offset:.6f}" if t in records else "", "0.5"]
                 for t, a in enumerate(accuracies)]
    write_csv_gz(path, TRIAL_COLUMNS, rows)


def test_the_report_writes_a_table_per_scenario_with_every_measure_and_a_plot(tmp_path):
    runs = [("amc-ddpg", s, "cpu", climbing(300, 0.80, 0.87, 0.005, s), -0.002, 0.3) for s in range(5)]
    runs += [("random", s, "cpu", np.clip(climbing(300, 0.84, 0.84, 0.01, 10 + s), 0, 0.858), -0.002, 0.3)
             for s in range(5)]
    runs += [("tpe", s, "cpu", climbing(300, 0.84, 0.90, 0.005, 20 + s), -0.03, 0.3) for s in range(5)]
    runs += [("amc-ddpg", s, "cpu", climbing(300, 0.70, 0.75, 0.005, s), 0.0, 0.2) for s in range(5)]
    write_trials(tmp_path / "league-trials.csv.gz", runs)
    ceiling = [("cmaes", s, "cpu", climbing(1000, 0.85, 0.91, 0.002, 30 + s), 0.0, 0.3) for s in range(3)]
    write_trials(tmp_path / "ceiling-trials.csv.gz", ceiling)

    markdown = write_report("league", tmp_path / "out", tmp_path)  # the league's ceiling study is in the data
    assert "best of 3000 trials" not in write_report("league", tmp_path / "bare", tmp_path, [])
    at_03, at_02 = markdown.split("### resnet20 0.2")
    headroom = quality.quality([r[3] for r in runs[:5]]) - quality.mean_best_so_far([r[3] for r in runs[5:10]])[29]
    assert f"headroom {100 * headroom:.2f} pp: informative;" in at_03 and "best of 3000 trials" in at_03
    assert "headroom unknown (no random policies around p)" in at_02  # its baseline's warm-up is 10 trials
    assert "| amc-ddpg | 5 |" in at_03 and "| 1 (reference) |" in at_03
    assert re.search(r"\| tpe \| loses to: -[\d.]+ pp \[-[\d.]+, -[\d.]+\] \| loses to", at_03)
    assert re.search(r"\| random \| 5 \|[^\n]*\| never \| never \(1\.\d\d pp short\)", at_03)
    with (tmp_path / "out" / "results.csv").open() as f:
        rows = {(r["scenario"], r["agent"]): r for r in csv.DictReader(f)}
    baseline, tpe, random = (rows["resnet20 0.3", agent] for agent in ("amc-ddpg", "tpe", "random"))
    assert float(baseline["speed_up"]) == 1.0 and baseline["speed_up_low"] == "" and baseline["guard"] == "True"
    assert float(tpe["speed_up"]) > 1.5 and tpe["guard"] == "False"  # faster, but lucky on the reward split
    assert random["t_q"] == "" and random["t_c"] == "" and int(baseline["t_c"]) >= int(baseline["first_crossing"])
    assert float(baseline["b10_low"]) <= float(baseline["b10"]) <= float(baseline["b10_high"])
    assert float(tpe["gap_to_ceiling"]) < float(baseline["gap_to_ceiling"])
    assert rows["resnet20 0.2", "amc-ddpg"]["gap_to_ceiling"] == ""  # no ceiling there
    assert float(baseline["seconds_per_trial"]) == 1.5
    for name in ("resnet20-0.3.png", "resnet20-0.2.png"):
        assert (tmp_path / "out" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_study_with_a_reference_reads_its_baselines_from_there(tmp_path):
    """The history probes run transfers only; the league's baselines at their target stand in."""
    league = [("amc-ddpg", s, "cpu", climbing(300, 0.76, 0.82, 0.005, s), 0.0, 0.2) for s in range(5)]
    league += [("random", s, "cpu", climbing(300, 0.79, 0.80, 0.005, 10 + s), 0.0, 0.2) for s in range(5)]
    league += [("amc-ddpg", s, "cpu", climbing(300, 0.85, 0.87, 0.005, s), 0.0, 0.3) for s in range(5)]
    write_trials(tmp_path / "league-trials.csv.gz", league)
    transfers = [("amc-ddpg", s, "cpu", climbing(300, 0.80, 0.83, 0.005, 20 + s), 0.0, 0.2) for s in range(3)]
    source = [("amc-ddpg", 0, "cpu", climbing(300, 0.85, 0.87, 0.005, 0), 0.0, 0.3)]  # the transfers' source run
    write_trials(tmp_path / "history-probes-trials.csv.gz", source)
    write_trials(tmp_path / "history-probes-trials.csv.gz", transfers, method="assistant", source="resnet20 0.3",
                 append=True)
    assert STUDIES["history-probes"].reference == "league"
    markdown = write_report("history-probes", tmp_path / "out", tmp_path)
    assert "### resnet20 0.3" not in markdown  # its source's scenario, not a target of the probes
    assert "| amc-ddpg | 5 |" in markdown and "| 1 (reference) |" in markdown and "headroom" in markdown
    assert re.search(r"\| amc-ddpg assistant from resnet20 0\.3 \| 3 \|[^\n]*\| \d+\.\d\dx \[", markdown)
    assert re.search(r"\| amc-ddpg assistant from resnet20 0\.3 \| loses to: -", markdown)  # the baseline, at T = 30
    assert re.search(r"Never worse than the baseline: [^\n]*amc-ddpg assistant from resnet20 0\.3 \+[\d.]+ pp at "
                     r"T = \d+ \(holds\)", markdown)


def test_a_transfer_row_is_named_by_its_variant_and_its_settings_listed_once(tmp_path):
    """A study's variants (e.g. `history-eq2-records`) name their rows; one row with two settings is refused."""
    league = [(agent, s, "cpu", climbing(300, 0.76, 0.82, 0.005, 10 * k + s), 0.0, 0.2)
              for k, agent in enumerate(("amc-ddpg", "random")) for s in range(5)]
    write_trials(tmp_path / "league-trials.csv.gz", league)
    transfers = [("amc-ddpg", s, "cpu", climbing(300, 0.80, 0.83, 0.005, 20 + s), 0.0, 0.2) for s in range(5)]
    for source in ("resnet20 0.5", "resnet20 0.4"):
        write_trials(tmp_path / "transfer-trials.csv.gz", transfers, method="history", source=source,
                     variant="history-eq2-records", settings="invariant_actor=True assistant_rescale=eq2",
                     append=source.endswith("0.4"))
    markdown = write_report("transfer", tmp_path / "out", tmp_path)
    assert re.search(r"\| amc-ddpg history-eq2-records from resnet20 0\.5 \| 5 \|", markdown)
    assert re.search(r"\| amc-ddpg history-eq2-records from resnet20 0\.4 \| 5 \|", markdown)
    assert markdown.count("- amc-ddpg history-eq2-records: `invariant_actor=True assistant_rescale=eq2`") == 1
    more = [("amc-ddpg", 5 + s, "cpu", climbing(300, 0.80, 0.83, 0.005, 30 + s), 0.0, 0.2) for s in range(5)]
    write_trials(tmp_path / "transfer-trials.csv.gz", more, method="history", source="resnet20 0.4",
                 variant="history-eq2-records", settings="invariant_actor=True", append=True)
    with pytest.raises(PruneGymError, match="history-eq2-records from resnet20 0.4 ran with two settings"):
        write_report("transfer", tmp_path / "out", tmp_path)


def test_a_black_box_searcher_with_history_is_also_measured_against_itself_from_scratch(tmp_path):
    """Beyond RL: TPE with history set beside TPE from scratch (the reference study's), not only the baseline."""
    league = [(agent, s, "cpu", climbing(300, 0.76, 0.82, 0.005, 10 * k + s), 0.0, 0.2)
              for k, agent in enumerate(("amc-ddpg", "random", "tpe", "sac")) for s in range(5)]
    write_trials(tmp_path / "league-trials.csv.gz", league)
    fast = [("tpe", s, "cpu", np.minimum(climbing(300, 0.80, 0.86, 0.005, 40 + s), 0.83), 0.0, 0.2) for s in range(5)]
    write_trials(tmp_path / "transfer-beyond-rl-trials.csv.gz", fast, method="history", source="resnet20 0.5")
    markdown = write_report("transfer-beyond-rl", tmp_path / "out", tmp_path)
    assert "| tpe | 5 |" in markdown and "| sac |" not in markdown  # the study's searchers' references only
    table = markdown.split("Each searcher with history against itself from scratch")[1]
    tpe_q = quality.quality([r[3] for r in league[10:15]])
    row = re.search(r"\| tpe history from resnet20 0\.5 \| ([\d.]+)% \| (\d+) / (\d+) \| ([\d.]+)x \[[^|]+"
                    r"\| (\d+) / (\d+) \| ([\d.]+)x \[", table)
    assert row and float(row[1]) == pytest.approx(100 * tpe_q, abs=0.01) and int(row[2]) < int(row[3])
    assert float(row[4]) == pytest.approx(int(row[3]) / int(row[2]), abs=0.01)
    # ... and to the AMC-style baseline's Q*, where TPE from scratch arrives at its own pace
    q_star = quality.quality([r[3] for r in league[:5]])
    assert int(row[6]) == quality.time_to_quality([r[3] for r in league[10:15]], q_star) != int(row[3])
    assert int(row[5]) < int(row[6]) and float(row[7]) == pytest.approx(int(row[6]) / int(row[5]), abs=0.01)
    assert re.search(r"\| beats: \+[\d.]+ pp \[\+[\d.]+, \+[\d.]+\] \|", table)  # b(30): history less scratch


def test_the_report_refuses_to_mix_device_kinds_in_one_table(tmp_path):
    runs = [("amc-ddpg", 0, "cpu", climbing(40, 0.8, 0.87), 0.0, 0.3),
            ("amc-ddpg", 1, "cuda (NVIDIA H200)", climbing(40, 0.8, 0.87), 0.0, 0.3)]
    write_trials(tmp_path / "mixed-trials.csv.gz", runs)
    with pytest.raises(PruneGymError, match="mixes runs made on cpu and cuda"):
        write_report("mixed", tmp_path / "out", tmp_path)
    only_cpu = scenarios(load_runs(tmp_path / "mixed-trials.csv.gz"), device_kind="cpu")
    assert [s.device_kind for s in only_cpu] == ["cpu"] and only_cpu[0].rows[0].seeds == 1
    with pytest.raises(PruneGymError, match="export the study first"):
        write_report("absent", tmp_path / "out", tmp_path)
    write_csv_gz(tmp_path / "old-trials.csv.gz", ("study", "model", "trial", "accuracy"), [["x", "resnet20", 0, 0.5]])
    with pytest.raises(PruneGymError, match="lacks the columns job, ratio"):
        write_report("old", tmp_path / "out", tmp_path)


def test_two_studies_compare_searcher_by_searcher_with_intervals_on_one_device_kind(tmp_path):
    better = [("cmaes", s, "cpu", climbing(300, 0.86, 0.90, 0.003, s), -0.01, 0.3) for s in range(3)]
    worse = [("cmaes", s, "cpu", climbing(300, 0.84, 0.87, 0.003, 10 + s), -0.01, 0.3) for s in range(5)]
    worse += [("tpe", 0, "cpu", climbing(300, 0.84, 0.87), 0.0, 0.3)]  # in one study only: left out
    write_trials(tmp_path / "streams-trials.csv.gz", better)
    write_trials(tmp_path / "league-trials.csv.gz", worse)
    (header, _, row) = compare("streams", "league", tmp_path).splitlines()
    assert "b(30): streams - league" in header and "tpe" not in row
    cells = row.split(" | ")
    assert cells[:3] == ["| resnet20 0.3", "cmaes", "3 / 5"]
    for cell, t in zip(cells[3:6], (30, 100, 300)):
        mine, theirs = (quality.mean_best_so_far([r[3] for r in runs])[t - 1] for runs in (better, worse[:5]))
        assert cell.startswith(f"{100 * mine:.2f} - {100 * theirs:.2f} = +") and cell.endswith("beats")
    write_trials(tmp_path / "gpu-trials.csv.gz", [("cmaes", 0, "cuda (NVIDIA H200)", climbing(300, 0.8, 0.9), 0, 0.3)])
    with pytest.raises(PruneGymError, match="runs made on cpu and cuda .*one device kind"):
        compare("gpu", "league", tmp_path)
    with pytest.raises(PruneGymError, match="share no scenario and searcher"):
        write_trials(tmp_path / "other-trials.csv.gz", [("random", 0, "cpu", climbing(300, 0.8, 0.9), 0, 0.2)])
        compare("other", "league", tmp_path)
