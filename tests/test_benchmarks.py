"""Helpers of the benchmark scripts that decide what they measure."""

from __future__ import annotations

import numpy as np
import pytest

from prune_gym.benchmarks.convergence import converged_accuracy, smoothed_mean, trials_to_converge
from prune_gym.history.plot import ema
from prune_gym.policies import budget_filling_policy, play


def test_full_budget_policies_follow_their_weights_and_spend_the_budget(make_env):
    env = make_env(target_ratio=0.4)
    budget = env.unwrapped.budget
    one_channel = max(budget.unit_cost(k) / c for k, c in enumerate(budget.channels)) / budget.total
    rng = np.random.default_rng(0)
    for _ in range(5):
        log_weights = rng.normal(0, 0.5, len(budget.channels))
        policy = np.array(budget_filling_policy(budget, log_weights))
        unclipped = policy < 1
        ratios = policy[unclipped] / np.exp(log_weights[unclipped])
        assert np.allclose(ratios, ratios[0])  # proportional to the weights
        info = play(env, policy.tolist())
        assert 0.4 - 2 * one_channel <= info["macs_ratio"] <= 0.4  # the whole budget, and no more


def test_trials_to_converge_follow_design_section_6():
    baseline = [np.linspace(0.5, 0.8, 100), np.linspace(0.5, 0.8, 100) + 0.01]
    curve = smoothed_mean(baseline)
    assert np.allclose(curve, (ema(baseline[0]) + ema(baseline[1])) / 2)
    goal = converged_accuracy(curve)
    assert goal == pytest.approx(curve[80:].mean())  # the last 20% of trials
    first = trials_to_converge(curve, goal)
    assert curve[first - 1] >= goal - 0.005 > curve[first - 2]  # the first trial within half a point, from 1
    assert trials_to_converge(np.full(50, 0.1), goal) == 50  # never: the whole budget
    fast = smoothed_mean([np.full(100, 0.9)])
    assert trials_to_converge(fast, goal) == 1


def test_kendall_tau_and_the_top_overlap_of_the_fidelity_study():
    from prune_gym.benchmarks.reward_fidelity import kendall_tau, top_overlap

    x = np.array([1.0, 2.0, 3.0, 4.0])
    assert kendall_tau(x, 10 * x) == 1 and kendall_tau(x, -x) == -1
    assert kendall_tau(np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 2.0])) == pytest.approx(1 / 3)
    # tau-b: a tie in one score is neither agreement nor disagreement, and shrinks the denominator
    assert kendall_tau(np.array([1.0, 1.0, 2.0]), np.array([1.0, 2.0, 3.0])) == pytest.approx(2 / np.sqrt(2 * 3))
    assert np.isnan(kendall_tau(np.ones(3), x[:3]))
    assert top_overlap(np.arange(10.0), np.arange(10.0), k=5) == 5
    assert top_overlap(np.arange(10.0), -np.arange(10.0), k=5) == 0


def test_the_fidelity_study_scores_each_policy_by_every_evaluator_and_resumes(tiny_checkpoint, fashion_root,
                                                                               tmp_path):
    from prune_gym.benchmarks.reward_fidelity import EVALUATORS, Scenario, read_rows, report, run

    scenario = Scenario("resnet20", 0.5, False, epochs=1, short_steps=2, checkpoint=tiny_checkpoint,
                        data_root=fashion_root, calibration_images=100)
    path = tmp_path / "fidelity.csv"
    run(scenario, 2, path)
    rows = read_rows(path)
    assert [r["index"] for r in rows] == [0, 1] and [r["kind"] for r in rows] == ["uniform", "searched"]
    for r in rows:
        policy = [float(f) for f in r["policy"].split()]
        plain = play(scenario.env, policy)
        assert r["score_refit"] == plain["accuracy"] and r["macs_ratio"] == plain["macs_ratio"] <= 0.5
        assert r["score_refit+bn"] == play(scenario.recalibrated, policy)["accuracy"]
        assert r["score_magnitude+bn"] == play(scenario.magnitude, policy)["accuracy"]
        assert all(0 <= r[f"score_{e}"] <= 1 and r[f"seconds_{e}"] > 0 for e in EVALUATORS)
        assert r["seconds_refit+ft"] > r["seconds_refit"] and 0 <= r["test_before"] <= 1
        assert 0 <= r["test_finetuned"] <= 1 and r["seconds_finetune"] > 0

    run(scenario, 3, path)  # as a killed run resumes: the two rows kept, the third policy measured
    again = read_rows(path)
    assert again[:2] == rows and [r["index"] for r in again] == [0, 1, 2] and again[2]["kind"] == "random 0.1"
    with path.open("a") as f:
        f.write("resnet20,0.5,False,1,2,3,random 0.2,0.4")  # a line a kill cut short
    assert read_rows(path) == again
    table = report(again).splitlines()
    assert len(table) == 2 + len(EVALUATORS) and all("| resnet20 0.5, 1-epoch fine-tune | 3 |" in line
                                                      for line in table[2:])
