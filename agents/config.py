"""What a search is: the scenario, the searcher and its settings, and how it uses history.

Methods say what the search takes from a source run (`--source`):
* `baseline`: nothing, a search from scratch;
* `vanilla`: the source's final weights (searchers that have them: the SB3 agents);
* `augmented`: the source's trials rewritten for this scenario (Eq. 2 and the unit
  mapping): preloaded into an off-policy agent's replay buffer, or played first by a
  black-box searcher (its best `warm_start` policies); agents that have weights also
  start from the source's, with the invariant actor where they have one;
* `assistant`: augmented, with the assistant choosing the first trials' actions;
* `history`: the project's default, the assistant with the fixes that paid in issue 19's
  probes: the source's preloaded rewards re-based on the target's and a floor under the
  exploration noise (`HISTORY_SETTINGS`, for the searchers that have those settings), and
  the assistant (`HISTORY_ASSISTANT`) playing around the search's best trials once it has
  explored the records, handing over when the actor plays as well and keeping every other
  trial after that, its records the source's policies scaled as a whole to fill the budget,
  after a power where the ratios lie far apart (`history_records_rescale`: Eq. 2 across a
  wide gap of ratios starts under random policies around p); each stays a setting that
  `agent_kwargs`, `assistant` or `assistant_rescale` overrides.
The assistant (`assistant` settings) also joins any other method and any searcher.
`rescale` says how a source's policies are rewritten for the target ratio (Eq. 2, or
scaled as a whole to fill the budget: `prune_gym.agents.augmentation`); `assistant_rescale`
rewrites the assistant's records otherwise than the preloaded trials, or each way ("both").
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from prune_gym.agents.assistant import HANDOVERS, Assistant
from prune_gym.agents.augmentation import RESCALES
from prune_gym.agents.searcher import Searcher, check_settings
from prune_gym.agents.searchers import DEFAULT_SEARCHER, searcher_class
from prune_gym.errors import PruneGymError

METHODS = ("baseline", "vanilla", "augmented", "assistant", "history")
TRANSFER_METHODS = ("vanilla", "augmented", "assistant", "history")  # the source's weights, where the agent has some
AUGMENTED_METHODS = ("augmented", "assistant", "history")  # start from the source's trials rewritten for the target
ASSISTED_METHODS = ("assistant", "history")  # the assistant acts, with its defaults unless `assistant` says otherwise
COMBINED_RESCALES = {"both": ("eq2", "budget")}  # the assistant's records rewritten several ways, together
PAPER_METHODS = ("vanilla", "augmented", "assistant")  # the paper's transfers, as it describes them
HISTORY_SETTINGS = {"rebase_preloaded": True, "sigma_min": 0.05}  # what `history` adds, where the searcher has it
# ... and to the assistant's defaults
HISTORY_ASSISTANT = {"handover": "earned", "incumbent": 5, "keep_until": 300}
# ... and how it rewrites the source's policies for the assistant's records: "power" from this log-ratio of the
# target's ratio to the source's (ln p / ln p_source) up, else "budget" (`history_records_rescale`)
POWER_FROM_LOG_RATIO = 2.0


def history_records_rescale(ratio: float, source_ratio: float | None) -> str:
    """How `history` rewrites a source's policies at `source_ratio` for the assistant's records at `ratio`.

    Scaling a policy as a whole keeps its shape, which serves a near source; raising its fractions to
    ln p / ln p_source first spreads them as the target's policies spread. Measured into ResNet-20 at
    0.2 (5 seeds, benchmarks/RESULTS.md): power pays from 0.5 (log-ratio 2.32) and costs from 0.4 (1.76).
    """
    if source_ratio is not None and np.log(ratio) / np.log(source_ratio) >= POWER_FROM_LOG_RATIO:
        return "power"
    return "budget"


@dataclass
class SearchConfig:
    model: str = "resnet20"
    dataset: str = "fashion-mnist"
    ratio: float = 0.5
    trials: int = 300
    method: str = "baseline"
    seed: int = 0
    device: str = "auto"
    warmup: int | None = None  # None: the searcher's default from scratch, 0 for the transfer methods
    checkpoint: str | None = None
    data_root: str | None = None
    env_kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. calibration_images
    agent_kwargs: dict[str, Any] = field(default_factory=dict)  # the searcher's settings (sigma0, ...)
    source: str | None = None  # transfer methods and the assistant: the run to start from
    assistant: dict[str, Any] | None = None  # Assistant settings ({} for the defaults); None: no assistant
    agent: str = DEFAULT_SEARCHER  # the searcher, by its name in prune_gym.agents.searchers
    rescale: str = "eq2"  # how the source's policies are rewritten for this ratio (augmented, assistant)
    assistant_rescale: str | None = None  # ... for the assistant's records alone; None: as `rescale`
    source_ratio: float | None = None  # the source run's ratio, which the search loop reads from the history file

    @property
    def searcher_class(self) -> type[Searcher]:
        return searcher_class(self.agent)

    @property
    def assistant_settings(self) -> dict[str, Any] | None:
        """The assistant's settings, or None when it does not act; `ASSISTED_METHODS` imply the defaults, `history`
        with `HISTORY_ASSISTANT` (unless `assistant` sets them otherwise)."""
        if self.method == "history":
            return {**HISTORY_ASSISTANT, **(self.assistant or {})}
        if self.assistant is None and self.method in ASSISTED_METHODS:
            return {}
        return self.assistant

    @property
    def assistant_rescale_setting(self) -> str | None:
        """`assistant_rescale`, or `history`'s `history_records_rescale` unless it is set; None: as `rescale`."""
        if self.assistant_rescale is None and self.method == "history":
            return history_records_rescale(self.ratio, self.source_ratio)
        return self.assistant_rescale

    @property
    def records_rescales(self) -> tuple[str, ...]:
        """How the source's policies are rewritten for the assistant's records: each of a `COMBINED_RESCALES`."""
        rescale = self.assistant_rescale_setting or self.rescale
        return COMBINED_RESCALES.get(rescale, (rescale,))

    @property
    def warmup_trials(self) -> int:
        if self.warmup is not None:
            return self.warmup
        return self.searcher_class.default_warmup if self.method == "baseline" else 0

    @property
    def sources(self) -> list[str]:
        return [self.source] if self.source is not None else []

    @property
    def agent_settings(self) -> dict[str, Any]:
        """The searcher's settings: `agent_kwargs` and what the method implies (augmented: the invariant actor;
        history: `HISTORY_SETTINGS`, unless `agent_kwargs` sets them otherwise)."""
        defaults = self.searcher_class.settings_defaults
        fixes = {k: v for k, v in HISTORY_SETTINGS.items() if k in defaults} if self.method == "history" else {}
        invariant = self.method in AUGMENTED_METHODS and "invariant_actor" in defaults
        implied = {"invariant_actor": True} if invariant else {}
        return {**fixes, **self.agent_kwargs, **implied}

    @property
    def takes_source_weights(self) -> bool:
        return self.method in TRANSFER_METHODS and self.searcher_class.takes_weights

    def searched_like(self, settings: dict[str, Any]) -> bool:
        """Whether a stored run's `settings` hold this search's searcher, assistant and rescale settings."""
        return (settings.get("agent_kwargs", {}) == self.agent_settings
                and settings.get("assistant") == self.assistant_settings
                and settings.get("rescale", "eq2") == self.rescale
                and settings.get("assistant_rescale") == self.assistant_rescale_setting)

    def validate(self) -> None:
        """Refuse, in one line that says why, a search that cannot run; before anything is loaded or written."""
        cls = self.searcher_class
        if self.method not in METHODS:
            raise PruneGymError(f"unknown method {self.method!r}; choose one of: {', '.join(METHODS)}")
        if self.trials < 1 or self.warmup_trials < 0:
            raise PruneGymError("trials must be positive and warmup non-negative")
        check_settings(cls, self.agent_settings)
        assistant = self.assistant_settings or {}
        parameters = inspect.signature(Assistant).parameters
        unknown = sorted(k for k in assistant if k not in parameters or k in ("episodes", "seed", "ratio"))
        if unknown:
            raise PruneGymError(f"not an assistant setting: {', '.join(unknown)}")
        if assistant.get("handover", "fixed") not in HANDOVERS:
            raise PruneGymError(f"unknown assistant handover {assistant['handover']!r}; choose one of: "
                                f"{', '.join(HANDOVERS)}")
        for rescale in (self.rescale, *self.records_rescales):
            if rescale not in RESCALES:
                raise PruneGymError(f"unknown rescale {rescale!r}; choose one of: {', '.join(RESCALES)}")
        if self.assistant_rescale is not None and self.assistant_settings is None:
            raise PruneGymError("assistant_rescale rewrites the assistant's records, and this search has no assistant")
        needs_source = self.method in TRANSFER_METHODS or self.assistant_settings is not None
        if needs_source != (self.source is not None):
            raise PruneGymError(f"a source run is needed by, and only by, the transfer methods "
                                f"({', '.join(TRANSFER_METHODS)}) and the assistant; method {self.method!r}, "
                                f"assistant {self.assistant_settings is not None}, source {self.source!r}")
        if self.method == "vanilla" and not cls.takes_weights:
            raise PruneGymError(f"vanilla transfer starts from a source's network weights, and the {self.agent} "
                                f"searcher has none; use --method augmented (its best policies first) or --assistant")
        if self.method in AUGMENTED_METHODS and not cls.takes_trials:
            raise PruneGymError(f"method {self.method} starts {self.agent} from a source's trials, and it learns only "
                                f"from its own (on-policy); use --method vanilla or --assistant")
