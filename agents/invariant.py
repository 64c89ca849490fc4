"""Network augmentation (the paper's Eq. 1): an actor that predicts the invariant I_k = a_k / p.

A unit's kept fraction scales with the target ratio p, so an actor trained at one ratio
acts badly at another. This actor's network predicts the invariant instead and acts
a_k = f(s_k) * p, with p read from the observation. Its squashed output u in [-1, 1] is a
log-scale invariant, I = INVARIANT_SPAN ** u: u = 0 is the uniform policy a = p, and I
ranges over [1/4, 4]. The change lives in the actor's `forward`, which both acting and
the critic's training call, and the policy saves and loads like any SB3 policy.
"""

from __future__ import annotations

from typing import Any

import torch
from stable_baselines3.td3.policies import Actor, TD3Policy

INVARIANT_SPAN = 4.0


def invariant_action(u: torch.Tensor, ratio: torch.Tensor) -> torch.Tensor:
    """Eq. 1: the kept fraction a = I * p for the invariant I = INVARIANT_SPAN ** u, within [0, 1]."""
    return (INVARIANT_SPAN ** u * ratio).clamp(0.0, 1.0)


class InvariantActor(Actor):
    """SB3's TD3/DDPG actor, acting a = f(s) * p; `ratio_index` is p's position in the observation."""

    def __init__(self, *args: Any, ratio_index: int, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.ratio_index = ratio_index

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        ratio = obs[:, self.ratio_index:self.ratio_index + 1]
        action = invariant_action(super().forward(obs), ratio)
        low = torch.as_tensor(self.action_space.low, device=action.device)
        high = torch.as_tensor(self.action_space.high, device=action.device)
        return 2.0 * (action - low) / (high - low) - 1.0  # SB3's actors act in [-1, 1]

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "ratio_index": self.ratio_index}


class InvariantPolicy(TD3Policy):
    """TD3Policy (also DDPG's) whose actor is an `InvariantActor`."""

    def __init__(self, *args: Any, ratio_index: int, **kwargs: Any):
        self.ratio_index = ratio_index  # make_actor runs inside TD3Policy.__init__
        super().__init__(*args, **kwargs)

    def make_actor(self, features_extractor: Any = None) -> InvariantActor:
        actor_kwargs = self._update_features_extractor(self.actor_kwargs, features_extractor)
        return InvariantActor(**actor_kwargs, ratio_index=self.ratio_index).to(self.device)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "ratio_index": self.ratio_index}
