"""Which past runs a new search should start from: `--source auto`, and the default search's history.

A finished run is usable when the search can take from it: a method that loads a source's
weights needs a run of the same searcher, with an actor of the same kind, that observed the
same features and stored its final weights (`check_weight_source`); trials (augmented
transfer, the assistant) can come from any run, another model's mapped unit by unit. Usable
runs are ranked by how far their scenario lies from the target's,

    distance = 10 [another data set] + 1 [another model] + gap x (1 if p_source <= p_target else 2)

where gap = |p_source - p_target| counts twice for a source that kept more of its network
than the target may: the paper found that a source searched at a lower ratio transfers
better. The runs of one scenario and searcher (seeds, say) stand as one candidate, the one
whose best policy scored highest; ties in distance go to the higher score. The nearest few
are the candidates: a search races them (`select_source`) when there are several, and runs
from scratch when there is none. The default search takes the nearest of the first file that
has one: the user's own history, then the library that ships.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prune_gym.agents.config import SearchConfig
from prune_gym.agents.transfer import check_weight_source
from prune_gym.budgets import DEFAULT_BUDGET
from prune_gym.env import observation_features
from prune_gym.errors import PruneGymError
from prune_gym.history import HistoryStore, RunInfo

AUTO = "auto"  # the --source value that asks for this choice
CANDIDATES = 3  # the nearest sources a search races
DATASET_STEP, MODEL_STEP, HIGHER_RATIO_WEIGHT = 10.0, 1.0, 2.0


@dataclass(frozen=True)
class Candidate:
    """A usable source run and its distance from the target scenario."""

    run: RunInfo
    distance: float

    def __str__(self) -> str:
        s = self.run.scenario
        return (f"{self.run.run_id} ({s.model} p = {s.target_ratio:g} on {s.dataset}, {self.run.agent}, "
                f"best {100 * (self.run.best_accuracy or 0):.2f}%, distance {self.distance:.2f})")


def distance(run: RunInfo, config: SearchConfig) -> float:
    """How far `run`'s scenario lies from `config`'s (the module's docstring gives the rule)."""
    s = run.scenario
    gap = abs(s.target_ratio - config.ratio)
    return (DATASET_STEP * (s.dataset != config.dataset) + MODEL_STEP * (s.model != config.model)
            + gap * (1.0 if s.target_ratio <= config.ratio else HIGHER_RATIO_WEIGHT))


def usable(run: RunInfo, config: SearchConfig) -> bool:
    """Whether `config`'s search can start from `run`."""
    if run.status != "finished" or not run.n_trials:
        return False
    features = list(observation_features(config.env_kwargs.get("budget", DEFAULT_BUDGET)))
    if run.scenario.model != config.model and run.scenario.feature_names != features:
        return False  # another model's units are mapped by their features
    if config.takes_source_weights:
        try:
            check_weight_source(run, config.agent, config.invariant_actor, features)
        except PruneGymError:
            return False
    return True


def rank_sources(runs: list[RunInfo], config: SearchConfig, limit: int = CANDIDATES) -> list[Candidate]:
    """The `limit` nearest usable runs, one per scenario and searcher, nearest first."""
    config = config.resolve()  # what it takes from a source, the invariant actor included, is known before one is
    best: dict[tuple, Candidate] = {}
    for run in runs:
        if not usable(run, config):
            continue
        s = run.scenario
        key = (s.model, s.dataset, s.target_ratio, run.agent)
        if key not in best or (run.best_accuracy or 0) > (best[key].run.best_accuracy or 0):
            best[key] = Candidate(run, distance(run, config))
    ranked = sorted(best.values(), key=lambda c: (c.distance, -(c.run.best_accuracy or 0)))
    return ranked[:limit]


def choose_sources(history: str | Path, config: SearchConfig, limit: int = CANDIDATES) -> list[Candidate]:
    """The candidates for `config` among the runs of the history file `history` (none if it does not exist)."""
    if not Path(history).exists():
        return []
    with HistoryStore(history) as store:
        return rank_sources(store.find_runs(status="finished"), config, limit)

