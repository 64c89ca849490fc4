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
