"""Helpers of the benchmark scripts that decide what they measure."""

from __future__ import annotations

import numpy as np

from prune_gym.benchmarks.policy_ceiling import full_budget_policy
from prune_gym.policies import play


def test_full_budget_policies_follow_their_weights_and_spend_the_budget(make_env):
    env = make_env(target_ratio=0.4)
    budget = env.unwrapped.budget
    one_channel = max(budget.unit_macs(k) / c for k, c in enumerate(budget.channels)) / budget.total_macs
    rng = np.random.default_rng(0)
    for _ in range(5):
        log_weights = rng.normal(0, 0.5, len(budget.channels))
        policy = np.array(full_budget_policy(budget, log_weights))
        unclipped = policy < 1
        ratios = policy[unclipped] / np.exp(log_weights[unclipped])
        assert np.allclose(ratios, ratios[0])  # proportional to the weights
        info = play(env, policy.tolist())
        assert 0.4 - 2 * one_channel <= info["macs_ratio"] <= 0.4  # the whole budget, and no more
