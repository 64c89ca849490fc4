"""Vanilla transfer (the paper's section IV): start a search from a stored run's weights.

The source's final weights are read from the history file and loaded into the new
searcher's networks (for actor-critic agents, the actor and critic and their target
networks), so that the first trial already plays the source's policy. The two runs must
be of the same agent and share the observation layout (the actor's input); the target
ratio is one of its features, so a source at another ratio is fine. Its actor must be of
the same kind: one that predicts kept fractions cannot seed one that predicts the
invariant a / p (`prune_gym.agents.invariant`), nor the reverse.
"""

from __future__ import annotations

from collections.abc import Sequence

from prune_gym.agents.searcher import Searcher
from prune_gym.errors import PruneGymError
from prune_gym.history import HistoryStore, RunInfo, Scenario

SOURCE_WEIGHTS = "final"  # the tag a finished run stores its searcher's weights under


def invariant_of(info: RunInfo) -> bool:
    """Whether a stored run's actor predicted the invariant a / p."""
    return bool(info.settings.get("agent_kwargs", {}).get("invariant_actor", False))


def check_weight_source(info: RunInfo, agent: str, invariant: bool, feature_names: Sequence[str]) -> None:
    """Refuse, saying why, a source run whose weights a searcher `agent` (`invariant`), observing
    `feature_names`, cannot start from."""
    source = info.run_id
    if info.agent != agent:
        raise PruneGymError(f"run {source} was searched by {info.agent}, this search by {agent}: weights "
                            f"transfer only between runs of the same agent")
    if list(info.scenario.feature_names) != list(feature_names):
        raise PruneGymError(f"run {source} observes {info.scenario.feature_names}, this search observes "
                            f"{list(feature_names)}: its weights cannot be transferred")
    kinds = {False: "the kept fraction", True: "the invariant a / p"}
    if invariant_of(info) != invariant:
        raise PruneGymError(f"run {source}'s actor predicts {kinds[invariant_of(info)]}, this agent's predicts "
                            f"{kinds[invariant]}: its weights cannot be transferred")
    if SOURCE_WEIGHTS not in info.weight_tags:
        raise PruneGymError(f"run {source} stored no final weights ({info.status}): nothing to transfer")


def load_source_weights(searcher: Searcher, store: HistoryStore, source: str, target: Scenario,
                        invariant: bool) -> None:
    """Load run `source`'s final weights into `searcher`, after `check_weight_source`."""
    check_weight_source(store.read_run(source).info, searcher.name, invariant, target.feature_names)
    searcher.load_weights(store.load_weights(source, SOURCE_WEIGHTS))
