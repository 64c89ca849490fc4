"""What a search is: the scenario, the searcher and its settings, and how it uses history.

A `SearchConfig` is built from what the user asks (the command line, a study, a script):
a method (`prune_gym.agents.methods`) or a preset (`prune_gym.agents.presets`), and the
user's own settings of the searcher and the assistant. `resolve` turns it into the search
the loop runs: the preset's settings under the user's, what the method implies, every
default filled in, the source run's ratio known; then it is validated, once. A resolved
configuration is what a run records and what a resumed run is matched against.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from prune_gym.agents.assistant import ASSISTANT_SETTINGS
from prune_gym.agents.augmentation import RESCALES
from prune_gym.agents.methods import Method, method
from prune_gym.agents.presets import Preset
from prune_gym.agents.searcher import Searcher, check_settings
from prune_gym.agents.searchers import DEFAULT_SEARCHER, searcher_class
from prune_gym.errors import PruneGymError

NOT_RECORDED = ("device", "data_root", "source", "preset", "resolved")  # where it ran, not what it searched


def default_warmup(method_name: str, agent: str) -> int:
    """The warm-up a search takes unless told: the searcher's own from scratch, none when it starts from a source."""
    return searcher_class(agent).default_warmup if not method(method_name).transfers else 0


@dataclass(frozen=True)
class SearchConfig:
    """One search.

    :param method: what it takes from `source` (None: the preset's method, else baseline)
    :param preset: a preset whose settings apply under the user's own
    :param warmup: trials of random fractions around p first (None: `default_warmup`)
    :param env_kwargs: the env's keyword arguments (budget, residual_streams, calibration_images, ...)
    :param agent_kwargs: the searcher's settings (its `settings_defaults`)
    :param assistant: the assistant's settings (`ASSISTANT_SETTINGS`); None: it acts where the method or
        preset has it, with their settings
    :param source: the history run a transfer or the assistant starts from
    :param rescale: how the source's policies are rewritten for this ratio (`prune_gym.agents.augmentation`;
        None: the preset's, else eq2)
    :param assistant_rescale: ... for the assistant's records alone (None: the preset's, else as `rescale`)
    :param source_ratio: the source run's ratio (`resolve` takes it from the history file)
    """

    model: str = "resnet20"
    dataset: str = "fashion-mnist"
    ratio: float = 0.5
    trials: int = 300
    method: str | None = None
    seed: int = 0
    device: str = "auto"
    warmup: int | None = None
    checkpoint: str | None = None
    data_root: str | None = None
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    agent_kwargs: dict[str, Any] = field(default_factory=dict)
    source: str | None = None
    assistant: dict[str, Any] | None = None
    agent: str = DEFAULT_SEARCHER
    rescale: str | None = None
    assistant_rescale: str | None = None
    source_ratio: float | None = None
    preset: Preset | None = None
    resolved: bool = False  # set by `resolve` alone

    @property
    def searcher_class(self) -> type[Searcher]:
        return searcher_class(self.agent)

    @property
    def method_record(self) -> Method:
        """The method run: the user's, else the preset's, else baseline."""
        return method(self.method or (self.preset.method if self.preset else "baseline"))

    @property
    def label(self) -> str:
        """The name the run is recorded under: the nearest registered preset's, else the method's."""
        return self.preset.recorded_as if self.preset else self.method_record.name

    @property
    def takes_source_weights(self) -> bool:
        """Whether it starts from the source's network weights: where its method and searcher do, and its preset
        does not forgo them."""
        forgone = self.preset is not None and self.preset.overrides()["weights"] is False
        return self.method_record.weights and self.searcher_class.takes_weights and not forgone

    @property
    def invariant_actor(self) -> bool:
        return bool(self.agent_kwargs.get("invariant_actor", False))

    @property
    def sources(self) -> list[str]:
        return [self.source] if self.source is not None else []

    @property
    def records_rescale(self) -> str:
        """How the source's policies are rewritten for the assistant's records."""
        return self.assistant_rescale or self.rescale

    def resolve(self, source_ratio: float | None = None, source_model: str | None = None) -> SearchConfig:
        """The search the loop runs, validated: the preset's settings under the user's (the searcher's for the
        searchers that have them), what the method implies (the invariant actor where it starts from the
        source's trials, the assistant where it has one), every default filled in. `source_ratio` and
        `source_model` are the source run's, where it has one; a preset's records rewrite may depend on the
        ratio, its assistant's settings on whether the model is another."""
        if self.resolved:
            return self
        if self.method is not None and self.preset is not None and self.method != self.preset.method:
            raise PruneGymError(f"preset {self.preset.name} runs method {self.preset.method}, not {self.method}")
        run = self.method_record
        preset = (self.preset or Preset("", run.name)).overrides()
        defaults = self.searcher_class.settings_defaults
        implied = {"invariant_actor": True} if run.trials and "invariant_actor" in defaults else {}
        agent_kwargs = {**{k: v for k, v in preset["agent"].items() if k in defaults}, **self.agent_kwargs,
                        **implied}
        assistant = None
        if self.assistant is not None or preset["assistant"] is not None or run.assistant:
            across = preset["assistant_across_models"] if source_model not in (None, self.model) else {}
            assistant = {**(preset["assistant"] or {}), **across, **(self.assistant or {})}
        records = self.assistant_rescale or preset["records_rescale"]
        if callable(records):
            records = records(self.ratio, source_ratio)
        warmup = self.warmup if self.warmup is not None else preset["warmup"]
        config = replace(self, method=run.name, agent_kwargs=agent_kwargs, assistant=assistant,
                         rescale=self.rescale or preset["rescale"] or "eq2",
                         assistant_rescale=records if assistant is not None else self.assistant_rescale,
                         warmup=default_warmup(run.name, self.agent) if warmup is None else warmup,
                         source_ratio=source_ratio, resolved=True)
        config._validate()
        return config

    def recorded_settings(self) -> dict[str, Any]:
        """What a run records of its resolved search (`searched_like` reads it back)."""
        settings = {k: v for k, v in asdict(self).items() if k not in NOT_RECORDED}
        return {**settings, "method": self.label, "preset": self.preset.name if self.preset else None}

    def searched_like(self, settings: dict[str, Any]) -> bool:
        """Whether a stored run's `settings` hold this resolved search's searcher, assistant and rescale settings."""
        return (settings.get("agent_kwargs", {}) == self.agent_kwargs
                and settings.get("assistant") == self.assistant
                and settings.get("rescale", "eq2") == self.rescale
                and settings.get("assistant_rescale") == self.assistant_rescale)

    def _validate(self) -> None:
        """Refuse, in one line that says why, a search that cannot run; before anything is loaded or written."""
        cls, run = self.searcher_class, self.method_record
        if self.trials < 1 or self.warmup < 0:
            raise PruneGymError("trials must be positive and warmup non-negative")
        check_settings(cls, self.agent_kwargs)
        if self.assistant is not None:
            ASSISTANT_SETTINGS.check(self.assistant)
        for rescale in (self.rescale, self.records_rescale):
            if rescale not in RESCALES:
                raise PruneGymError(f"unknown rescale {rescale!r}; choose one of: {', '.join(RESCALES)}")
        if self.assistant_rescale is not None and self.assistant is None:
            raise PruneGymError("assistant_rescale rewrites the assistant's records, and this search has no assistant")
        needs_source = run.transfers or self.assistant is not None
        if needs_source != (self.source is not None):
            raise PruneGymError(f"a source run is needed by, and only by, the transfer methods and the assistant; "
                                f"method {run.name}, assistant {self.assistant is not None}, source {self.source!r}")
        if run.weights and not run.trials and not cls.takes_weights:
            raise PruneGymError(f"vanilla transfer starts from a source's network weights, and the {self.agent} "
                                f"searcher has none; use --method augmented (its best policies first) or --assistant")
        if run.trials and not cls.takes_trials:
            raise PruneGymError(f"method {self.label} starts {self.agent} from a source's trials, and it learns only "
                                f"from its own (on-policy); use --method vanilla or --assistant")
