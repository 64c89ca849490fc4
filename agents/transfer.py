"""Vanilla transfer (the paper's section IV): start a search from a stored run's actor and critic.

The source's weights are read from the history file and copied into the new agent's
actor and critic and into their target networks, so that the first trial already plays
the source's policy. The two runs must share the observation layout (the actor's input);
the target ratio is one of its features, so a source at another ratio is fine. Its actor
must be of the same kind: one that predicts kept fractions cannot seed one that predicts
the invariant a / p (`prune_gym.agents.invariant`), nor the reverse.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from prune_gym.agents.invariant import InvariantActor
from prune_gym.errors import PruneGymError
from prune_gym.history import HistoryStore, Scenario

SOURCE_WEIGHTS = "final"  # the tag a finished run stores its agent under


def load_source_weights(agent: OffPolicyAlgorithm, store: HistoryStore, source: str, target: Scenario) -> None:
    """Copy run `source`'s final actor and critic into `agent` (and its target networks)."""
    source_info = store.read_run(source).info
    if source_info.scenario.feature_names != target.feature_names:
        raise PruneGymError(f"run {source} observes {source_info.scenario.feature_names}, this search observes "
                            f"{target.feature_names}: its weights cannot be transferred")
    kinds = {False: "the kept fraction", True: "the invariant a / p"}
    source_invariant = bool(source_info.settings.get("agent_kwargs", {}).get("invariant_actor", False))
    if source_invariant != isinstance(agent.actor, InvariantActor):
        raise PruneGymError(f"run {source}'s actor predicts {kinds[source_invariant]}, this agent's predicts "
                            f"{kinds[not source_invariant]}: its weights cannot be transferred")
    weights = store.load_weights(source, SOURCE_WEIGHTS)
    for network, state in ((agent.actor, weights.actor), (agent.critic, weights.critic)):
        _load(network, state, source)
    agent.actor_target.load_state_dict(agent.actor.state_dict())
    agent.critic_target.load_state_dict(agent.critic.state_dict())


def _load(network: torch.nn.Module, state: Mapping[str, np.ndarray], source: str) -> None:
    expected = {name: tuple(p.shape) for name, p in network.state_dict().items()}
    found = {name: tuple(np.shape(v)) for name, v in state.items()}
    if expected != found:
        raise PruneGymError(f"run {source}'s {type(network).__name__} does not fit this agent's "
                            f"(shapes {found} against {expected}): use the same network settings")
    network.load_state_dict({name: torch.as_tensor(value) for name, value in state.items()})
