"""The paper's experiments as a matrix of searches, run until done (issue 8).

A study crosses searchers (`--agents`), methods (or variants: a method with settings of
its own), transfer scenarios (a source model and ratio, a target model and ratio) and
seeds. Each cell is a `Job`: one search, and for the transfer methods the baseline run it
starts from, itself a job. Every job writes a history file of its own,
<out>/runs/<job key>.h5, so several run at once (a history file has one writer) and a
transfer reads its source from its source job's file. A job whose file holds a finished
run is skipped and an interrupted one is resumed, so re-running a study after any
interruption goes on where it stopped. Jobs run `jobs` at a time, sharing the cores, on a
Ray cluster or in local processes (`prune_gym.cluster`); with GPUs they are dealt out over
them. Finished runs are exported into the committed data (`data_export.py`), and jobs whose
runs it already holds are skipped, so a study can go on on a new machine. So that it goes on
pruning the same network there, each model's trained weights are committed too
(`benchmarks/checkpoints/`): pretraining on another CPU gives other weights.

    .venv/bin/python benchmarks/study.py --study core --out runs/study --jobs 2
"""

from __future__ import annotations

import argparse
import re
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from prune_gym.agents.config import SearchConfig
from prune_gym.agents.methods import METHODS, PAPER_METHODS
from prune_gym.agents.presets import PRESETS, Preset
from prune_gym.agents.loop import search_to_completion
from prune_gym.agents.searchers import DEFAULT_SEARCHER, SEARCHERS
from prune_gym.budgets import DEFAULT_BUDGET
from prune_gym.checkpoints import checkpoint_digest
from prune_gym.cluster import Task, open_backend
from prune_gym.errors import PruneGymError
from prune_gym.history import HistoryStore, RunInfo
from prune_gym.history.errors import HistoryError
from prune_gym.pretrain import pretrain

SOURCE_RUN = "run-0001"  # a job's file holds its run alone
CHECKPOINTS = Path(__file__).parent / "checkpoints"  # the trained networks the committed data pruned
# The env options (with their defaults) that a study's runs must share with it.
LEAGUE_SEARCHERS = ("amc-ddpg", "cmaes", "ppo", "random", "sac", "td3", "tpe")  # the league's entries, once and for all
SCENARIO_OPTIONS = {"residual_streams": False, "budget": DEFAULT_BUDGET}


def as_preset(method: str | Preset) -> Preset:
    """A study's method as a preset: a registered preset's name is that preset, a method's name the method with
    its defaults."""
    if isinstance(method, Preset):
        return method
    return PRESETS[method] if method in PRESETS else Preset(method, method)


@dataclass(frozen=True)
class Job:
    """One search of a study; `source` is the baseline job a transfer starts from."""

    model: str
    ratio: float
    method: str
    seed: int
    trials: int
    invariant_actor: bool = False
    source: Job | None = None
    agent: str = DEFAULT_SEARCHER
    preset: Preset | None = None  # a preset the search runs (`method` is the name it is recorded under)

    @property
    def key(self) -> str:
        """The job's name, unique in a study, and its history file's (the default agent's keys name no agent)."""
        agent = "" if self.agent == DEFAULT_SEARCHER else f"-{self.agent}"
        method = self.preset.name if self.preset else self.method
        name = (f"{self.model}-p{self.ratio}{agent}-{method}{'-invariant' if self.invariant_actor else ''}"
                f"-seed{self.seed}")
        return f"{name}-from-{self.source.key}" if self.source else name

    @property
    def base_method(self) -> str:
        """The method the job runs (a preset's, or its own)."""
        return self.preset.method if self.preset else self.method

    @staticmethod
    def method_in_key(key: str, model: str, ratio: float, agent: str) -> str | None:
        """The method's or preset's name in a job's `key` (e.g. `history-eq2-records`), None when the key is
        not a job's of that model, ratio and agent: what a report names a row by."""
        agent = "" if agent == DEFAULT_SEARCHER else f"-{agent}"
        found = re.match(rf"{re.escape(f'{model}-p{ratio}{agent}')}-(.+?)(-invariant)?-seed\d+(-from-|$)", key)
        return found and found.group(1)

    def config(self, dataset: str, device: str, checkpoint: str | None, data_root: str | None,
               env_kwargs: dict[str, Any]) -> SearchConfig:
        """The job's search; `checkpoint` None prunes the model's committed weights (`committed_checkpoint`)."""
        return SearchConfig(self.model, dataset, self.ratio, self.trials, None if self.preset else self.method,
                            self.seed, device,
                            checkpoint=checkpoint or _existing(committed_checkpoint(self.model, dataset)),
                            data_root=data_root, env_kwargs=env_kwargs,
                            agent_kwargs={"invariant_actor": True} if self.invariant_actor else {},
                            source=SOURCE_RUN if self.source else None, agent=self.agent, preset=self.preset)


@dataclass(frozen=True)
class Transfer:
    """A transfer scenario: from `source_model` at `source_ratio` to `target_model` at `target_ratio`."""

    source_model: str
    source_ratio: float
    target_model: str
    target_ratio: float

    @property
    def name(self) -> str:
        return f"{self.source_model} {self.source_ratio} -> {self.target_model} {self.target_ratio}"


@dataclass(frozen=True)
class Study:
    """Searchers x methods x transfers x seeds, the same trial budget for all; baselines at every target
    and at `baselines`. A searcher is crossed only with the methods it can run (no vanilla transfer
    into a black-box searcher, no preloaded trials for an on-policy one)."""

    dataset: str
    transfers: tuple[Transfer, ...]
    baselines: tuple[tuple[str, float], ...] = ()  # (model, ratio) baselines beyond the targets'
    methods: tuple[str | Preset, ...] = PAPER_METHODS  # methods, registered presets' names, or presets
    seeds: tuple[int, ...] = (0, 1, 2)
    trials: int = 300
    source_seed: int = 0
    agents: tuple[str, ...] = (DEFAULT_SEARCHER,)
    env_options: tuple[tuple[str, Any], ...] = ()  # the env's keyword arguments in every search of the study
    # A study whose committed baselines stand in for this one's at the same scenarios: they are not run
    # again (unless a transfer needs one as its source) and the report reads them from there.
    reference: str | None = None
    # The study whose long black-box runs give this one's scenarios their ceiling, in the report once its
    # data are committed.
    ceiling: str | None = None

    def source_job(self, transfer: Transfer, method: str | Preset, agent: str = DEFAULT_SEARCHER) -> Job:
        """The baseline a transfer starts from: of the same searcher when it takes weights, else the default's;
        with the invariant actor where the transfer takes the source's trials (and so its weights are invariant)."""
        source_agent = agent if SEARCHERS[agent].takes_weights else DEFAULT_SEARCHER
        invariant = (METHODS[as_preset(method).method].trials
                     and "invariant_actor" in SEARCHERS[source_agent].settings_defaults)
        return Job(transfer.source_model, transfer.source_ratio, "baseline", self.source_seed, self.trials,
                   invariant_actor=invariant, agent=source_agent)

    def baseline_jobs(self, model: str, ratio: float) -> list[Job]:
        return [Job(model, ratio, "baseline", seed, self.trials, agent=agent) for seed in self.seeds
                for agent in self.agents]

    def transfer_jobs(self, transfer: Transfer, method: str | Preset, agent: str = DEFAULT_SEARCHER) -> list[Job]:
        source = self.source_job(transfer, method, agent)
        preset = None if method in METHODS else as_preset(method)
        label = preset.recorded_as if preset else method
        return [Job(transfer.target_model, transfer.target_ratio, label, seed, self.trials, source=source, agent=agent,
                    preset=preset) for seed in self.seeds]

    def crossings(self) -> list[tuple[Transfer, str | Preset, str]]:
        """(transfer, method, agent) for every transfer cell the searchers can run."""
        return [(t, m, a) for t in self.transfers for a in self.agents for m in self.methods
                if _runs(a, as_preset(m))]

    def jobs(self) -> list[Job]:
        """Every job once, each after its source; the baselines and transfers seed by seed, so that a study
        cut short has the first seeds of every searcher, method and scenario."""
        targets = [(t.target_model, t.target_ratio) for t in self.transfers]
        jobs = sorted((job for model, ratio in dict.fromkeys([*self.baselines, *targets])
                       for job in self.baseline_jobs(model, ratio)), key=lambda job: job.seed)  # seed by seed
        jobs += [self.source_job(t, m, a) for t, m, a in self.crossings()]
        jobs += sorted((job for t, m, a in self.crossings() for job in self.transfer_jobs(t, m, a)),
                       key=lambda job: job.seed)
        return list(dict.fromkeys(jobs))

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(job.model for job in self.jobs()))

    def restricted(self, models: Sequence[str]) -> Study:
        """The part of the study that searches `models` (a name, or "name:ratio" for one ratio of it), with
        the source runs its transfers start from (whatever their model), e.g. to run it model by model."""
        def searched(model: str, ratio: float) -> bool:
            return model in models or f"{model}:{ratio}" in models

        return replace(self, transfers=tuple(t for t in self.transfers if searched(t.target_model, t.target_ratio)),
                       baselines=tuple(b for b in self.baselines if searched(*b)))

    def from_sources(self, sources: Sequence[str]) -> Study:
        """The part of the study whose transfers start from `sources` (a model, or "model:ratio"), e.g. to run
        the transfers a table needs most first; the baselines stay."""
        return replace(self, transfers=tuple(t for t in self.transfers if t.source_model in sources
                                             or f"{t.source_model}:{t.source_ratio}" in sources))

    def with_methods(self, names: Sequence[str]) -> Study:
        """The part of the study that runs these methods or presets (by name), their baselines and
        sources, e.g. to run a study's most wanted method on every seed first."""
        known = [as_preset(m).name for m in self.methods]
        unknown = [name for name in names if name not in known]
        if unknown:
            raise PruneGymError(f"not a method of this study: {', '.join(unknown)}; choose from: {', '.join(known)}")
        return replace(self, methods=tuple(m for m in self.methods if as_preset(m).name in names))

    def with_seeds(self, seeds: Sequence[int]) -> Study:
        """The study on these seeds instead of its own, e.g. more seeds for a row whose interval is too wide
        to decide; the transfers still start from the source seed."""
        if not seeds or min(seeds) < 0:
            raise PruneGymError(f"seeds must be one or more integers >= 0, got {list(seeds)}")
        return replace(self, seeds=tuple(dict.fromkeys(seeds)))


# `history` as it was before its assistant's records were the source's policies scaled to fill the budget: Eq. 2's,
# as the preloaded trials are (and as every variant below but the last has them).
HISTORY_EQ2_RECORDS = Preset("history-eq2-records", "history", records_rescale="eq2")
# ... and before its assistant kept turns after the hand-over (and its actor's noise floor was 0.1): the assistant
# around the search's 5 best trials once it has explored the records, handing over when the actor plays as well.
BEFORE_KEPT_TURNS = {"keep_until": 0, "random_every": 0}
HISTORY_INCUMBENT = Preset("history-incumbent", "history", agent={"sigma_min": 0.1},
                           assistant=BEFORE_KEPT_TURNS, records_rescale="eq2")
# Issue 19's probe of a far source's weak start into 0.3: every third of the assistant's exploring trials a random
# policy around p. Measured into 0.2 (RESULTS.md): a faster search from 0.3, a much slower one from 0.5, whose
# incumbent then averages random policies with the records.
HISTORY_RANDOM_EVERY = Preset("history-random-every", "history", assistant={"random_every": 3},
                              records_rescale="eq2")
# ... and before the incumbent: the assistant from the records alone, the paper's hand-over.
BEFORE_INCUMBENT = {"handover": "fixed", "incumbent": 0, **BEFORE_KEPT_TURNS}
HISTORY_RECORDS = Preset("history-records", "history", agent={"sigma_min": 0.1},
                         assistant=BEFORE_INCUMBENT, records_rescale="eq2")
# Issue 19's probe of a far source's weak start, on that: the assistant's records scaled as a whole to fill the
# budget (the preloaded trials still by Eq. 2, whose spread the agent learns from). Measured into 0.2: a better
# start from every source, then a search that stalls near it (RESULTS.md).
HISTORY_ASSISTANT_BUDGET = Preset("history-assistant-budget", "history", agent={"sigma_min": 0.1},
                                  assistant=BEFORE_INCUMBENT, records_rescale="budget")

# Issue 19's probe of a far source into 0.2: the assistant's records as the source's fractions raised to
# ln p / ln p_source, then scaled to fill the budget, which spreads the units as Eq. 2 does near the uniform policy.
# `history` now takes them where ln p / ln p_source >= 2 (from 0.5 into 0.2), the budget-scaled records elsewhere.
HISTORY_POWER_RECORDS = Preset("history-power-records", "history", records_rescale="power")
# ... and `history` before that, with budget-scaled records from every source.
HISTORY_BUDGET_RECORDS = Preset("history-budget-records", "history", records_rescale="budget")
# Issue 19's probe of history for a black-box searcher: the assistant hands over for good once earned, as it
# did before kept turns, which a DDPG's actor needs and a searcher that models every trial (TPE) may not: with
# them TPE proposes only every other trial, and from 0.4 into 0.2 reached its own quality no sooner than from
# scratch. Measured (RESULTS.md): no better, 1.59x, 1.06x and 1.20x from 0.5, 0.4 and 0.3 against 2.27x, 0.96x
# and 1.72x with the turns.
HISTORY_NO_KEPT_TURNS = Preset("history-no-kept-turns", "history", assistant={"keep_until": 0})

# Our analogue of the paper's Figs. 5, 7, 8 and Tables I and III, on Fashion-MNIST.
CORE = Study("fashion-mnist", (
    Transfer("resnet20", 0.5, "resnet20", 0.2),
    Transfer("resnet20", 0.3, "resnet20", 0.2),
    Transfer("resnet20", 0.5, "resnet56", 0.3),
    Transfer("resnet20", 0.5, "mobilenet_v1", 0.3),
), baselines=(("resnet20", 0.3), ("resnet20", 0.5)))

STUDIES = {
    "core": CORE,
    # Issue 8's extension, a superset of the core (run it into the same --out and the core's runs are reused):
    # 0.4 as a source, every transfer into 0.3, ResNet-20 at 0.3 as a cross-model source, ResNet-18.
    "extended": replace(CORE, transfers=(
        *CORE.transfers,
        Transfer("resnet20", 0.4, "resnet20", 0.2),
        *(Transfer("resnet20", source, "resnet20", 0.3) for source in (0.2, 0.4, 0.5)),
        *(Transfer("resnet20", 0.3, model, 0.3) for model in ("resnet56", "mobilenet_v1")),
        *(Transfer("resnet20", source, "resnet18", 0.3) for source in (0.5, 0.3)),
    ), baselines=(*CORE.baselines, ("resnet20", 0.4))),
    # The searcher league (issue 18): every searcher from scratch on ResNet-20 at 0.3 and 0.2, 5 seeds.
    "league": Study("fashion-mnist", (), baselines=(("resnet20", 0.3), ("resnet20", 0.2)), seeds=(0, 1, 2, 3, 4),
                    agents=LEAGUE_SEARCHERS, ceiling="ceiling"),
    # The league on two more models, with the AMC-style baseline and two black-box references (a MobileNet v1
    # trial took 2.0-2.4 s on one CPU thread, about a ResNet-20 one: about 12 min a search).
    "league-models": Study("fashion-mnist", (), baselines=(("mobilenet_v1", 0.3), ("resnet56", 0.2)),
                           seeds=(0, 1, 2, 3, 4), agents=("amc-ddpg", "random", "tpe"), ceiling="ceiling-models"),
    # Each league scenario's ceiling: CMA-ES for 1,000 trials a seed, the seeds pooled (3,000 trials on
    # ResNet-20, 1,000 on the others).
    "ceiling": Study("fashion-mnist", (), baselines=(("resnet20", 0.3), ("resnet20", 0.2)), seeds=(0, 1, 2),
                     trials=1000, agents=("cmaes",)),
    "ceiling-models": Study("fashion-mnist", (), baselines=(("mobilenet_v1", 0.3), ("resnet56", 0.2)), seeds=(0,),
                            trials=1000, agents=("cmaes",)),
    # Issue 20's residual streams as units: the league's scenarios and main searchers, to set beside it
    # (`compare.py streams league`).
    "streams": Study("fashion-mnist", (), baselines=(("resnet20", 0.3), ("resnet20", 0.2)), seeds=(0, 1, 2, 3, 4),
                     agents=("cmaes", "amc-ddpg", "random", "tpe"), env_options=(("residual_streams", True),)),
    # Issue 19's transfer matrix under version 2: the default history method, its variants above and
    # the paper's methods from every source into ResNet-20 at the league's ratios, 5 seeds; the baselines are the
    # league's.
    "transfer": Study("fashion-mnist", (
        *(Transfer("resnet20", source, "resnet20", 0.2) for source in (0.5, 0.4, 0.3)),
        *(Transfer("resnet20", source, "resnet20", 0.3) for source in (0.5, 0.2)),
    ), methods=("history", HISTORY_POWER_RECORDS, HISTORY_BUDGET_RECORDS, HISTORY_EQ2_RECORDS, HISTORY_RANDOM_EVERY,
                HISTORY_INCUMBENT, HISTORY_RECORDS, HISTORY_ASSISTANT_BUDGET, *PAPER_METHODS),
        seeds=(0, 1, 2, 3, 4), reference="league", ceiling="ceiling"),
    # Issue 19's "beyond RL": the same history (the assistant's first trials and the source's best policies) for
    # the league's black-box searchers, on the informative transfers, against their league runs from scratch. Run
    # it into the transfer study's --out to share its source runs.
    "transfer-beyond-rl": Study("fashion-mnist", tuple(Transfer("resnet20", source, "resnet20", 0.2)
                                                     for source in (0.5, 0.4, 0.3)),
                                methods=("history", HISTORY_NO_KEPT_TURNS), seeds=(0, 1, 2, 3, 4),
                                agents=("tpe", "random", "cmaes"), reference="league", ceiling="ceiling"),
    # ... and across models, into MobileNet v1 at 0.3 (informative), 3 seeds, against league-models' runs from
    # scratch. Run it into the transfer study's --out, adopting (`--adopt`) its source at 0.3 from transfer-models'.
    "transfer-beyond-rl-models": Study("fashion-mnist", tuple(Transfer("resnet20", source, "mobilenet_v1", 0.3)
                                                            for source in (0.5, 0.3)),
                                       methods=("history",), seeds=(0, 1, 2), agents=("tpe", "random"),
                                       reference="league-models", ceiling="ceiling-models"),
    # The paper's methods and history across models, 3 seeds, against league-models' baselines.
    "transfer-models": Study("fashion-mnist", (
        *(Transfer("resnet20", source, "mobilenet_v1", 0.3) for source in (0.3, 0.5)),
        Transfer("resnet20", 0.3, "resnet56", 0.2),
    ), methods=("history", *PAPER_METHODS), seeds=(0, 1, 2), reference="league-models", ceiling="ceiling-models"),
    # Issue 19's probes: why history falls short, one cause at a time, on a scenario with headroom (ResNet-20
    # 0.3 -> 0.2): the paper's assistant, and the same with one fix each. Baselines from the league.
    "history-probes": Study("fashion-mnist", (Transfer("resnet20", 0.3, "resnet20", 0.2),), methods=(
        "assistant",
        Preset("assistant-sigma-min", "assistant", agent={"sigma_min": 0.1}),
        Preset("assistant-rebased", "assistant", agent={"rebase_preloaded": True}),
        Preset("assistant-budget-rescale", "assistant", rescale="budget"),
        Preset("assistant-late-handover", "assistant", assistant={"trials": 100}),
        Preset("assistant-earned-handover", "assistant", assistant={"handover": "earned"}),
        # ... and re-based rewards, the one fix that paid alone, with each of the others
        Preset("assistant-rebased-sigma-min", "assistant",
               agent={"rebase_preloaded": True, "sigma_min": 0.1}),
        Preset("assistant-rebased-progress", "assistant",
               agent={"rebase_preloaded": True, "sigma_schedule": "progress"}),
        Preset("assistant-rebased-budget-rescale", "assistant", agent={"rebase_preloaded": True},
               rescale="budget"),
    ), seeds=(0, 1, 2), reference="league", ceiling="ceiling"),
    # The whole pipeline in a few minutes (CI runs it on a tiny checkpoint).
    "quick": Study("fashion-mnist", (Transfer("resnet20", 0.5, "resnet20", 0.3),), seeds=(0, 1), trials=4),
}


def committed_checkpoint(model: str, dataset: str, checkpoints: Path = CHECKPOINTS) -> Path:
    """Where the committed weights of `model` trained on `dataset` are, or go once pretrained."""
    return checkpoints / f"{model}_{dataset}.pt"


def _existing(path: Path) -> str | None:
    return str(path) if path.exists() else None


def study_checkpoints(study: Study, checkpoint: str | None = None, data_root: str | None = None,
                      device: str = "auto", progress: bool = True, checkpoints: Path = CHECKPOINTS) -> dict[str, str]:
    """The weights each model of the study prunes: `checkpoint` (a study of one model), else the committed
    ones; a model with none is pretrained first, with every core, and saved to `checkpoints` to be committed
    with the study's data."""
    if checkpoint is not None and len(study.models) > 1:
        raise PruneGymError(f"one checkpoint cannot serve the study's {len(study.models)} models: {study.models}")
    if checkpoint is not None:
        return {model: checkpoint for model in study.models}
    paths = {}
    for model in study.models:
        path = committed_checkpoint(model, study.dataset, checkpoints)
        if not path.exists():
            trained = pretrain(model, study.dataset, data_root, device=device, progress=progress)
            checkpoints.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(trained.path, path)
            print(f"study: {model} pretrained here, saved as {path}: commit it with the study's data, so that "
                  f"other machines prune the same network")
        paths[model] = str(path)
    return paths


def _runs(agent: str, preset: Preset) -> bool:
    """Whether `agent` can run `preset` (SearchConfig's rules, without a scenario)."""
    try:
        SearchConfig(agent=agent, source=SOURCE_RUN, preset=preset).resolve()
    except PruneGymError:
        return False
    return True


@dataclass
class StudyRun:
    """How each job of a run of `run_study` ended: 'skipped' (already done), 'done', or the error."""

    outcomes: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> dict[str, str]:
        return {k: v for k, v in self.outcomes.items() if v not in ("skipped", "done")}


def history_of(out: Path, job: Job) -> Path:
    return out / "runs" / f"{job.key}.h5"


def job_status(history: Path) -> tuple[str, int]:
    """('finished', 'interrupted', 'running' or 'new', trials recorded) of the run in a job's history file."""
    try:
        with HistoryStore(history) as store:
            runs = store.find_runs()
    except HistoryError:  # no file yet, or being created
        return "new", 0
    return (runs[-1].status, runs[-1].n_trials) if runs else ("new", 0)


def adopt(study: Study, out: str | Path, files: Sequence[str | Path]) -> list[str]:
    """Copy finished runs of other history files into the study's jobs that have no run yet; their keys.

    A run matches a job with the same scenario, method, seed, trial count and settings; a
    transfer's source run, in the same file, must match the job's source job. An adopted
    transfer keeps its source's id in that file, not the study's `SOURCE_RUN`.
    """
    adopted = []
    for job in study.jobs():
        path = history_of(Path(out), job)
        if job_status(path)[0] != "new":
            continue
        for file in files:
            with HistoryStore(file) as store:
                run_id = next((info.run_id for info in store.find_runs(job.model, study.dataset, job.ratio, job.method,
                                                                        "finished")
                              if _matches(store, info, job, dict(study.env_options))), None)
            if run_id is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                with HistoryStore(path, "a") as store:
                    store.import_run(file, run_id)
                adopted.append(job.key)
                break
    return adopted


def _scenario_options(env_options: Mapping[str, Any]) -> dict[str, Any]:
    """The env options that change what is pruned or what p measures, less those at their defaults (others,
    e.g. the calibration size in a test, leave the scenario as it is)."""
    return {k: v for k, v in env_options.items() if k in SCENARIO_OPTIONS and v != SCENARIO_OPTIONS[k]}


def _same_settings(info: RunInfo, job: Job) -> bool:
    """Whether run `info` searched with the settings of `job`'s method or preset."""
    config = job.config(info.scenario.dataset, "auto", None, None, {}).resolve(info.settings.get("source_ratio"))
    return config.searched_like(info.settings) and info.settings.get("warmup") == config.warmup


def _matches(store: HistoryStore, info: RunInfo, job: Job, env_options: dict[str, Any]) -> bool:
    """Whether `info` (a run in `store`) is the run `job` would make with `env_options`."""
    if (info.seed, info.n_trials, info.method, info.agent) != (job.seed, job.trials, job.method, job.agent) or \
            _scenario_options(info.settings.get("env_kwargs", {})) != _scenario_options(env_options) or \
            not _same_settings(info, job):
        return False
    if job.source is None:
        return not info.sources
    if len(info.sources) != 1:
        return False
    source = store.read_run(info.sources[0]).info
    return (source.scenario.model, source.scenario.target_ratio) == (job.source.model, job.source.ratio) and \
        _matches(store, source, job.source, env_options)


def run_study(study: Study, out: str | Path, jobs: int = 1, device: str = "auto", checkpoint: str | None = None,
              data_root: str | None = None, env_kwargs: dict[str, Any] | None = None, progress: bool = True,
              poll_seconds: float = 5.0, backend: str = "auto", address: str | None = None,
              threads: int | None = None, committed: Mapping[str, int] | None = None,
              committed_digests: Mapping[str, str] | None = None, checkpoints: Path = CHECKPOINTS) -> StudyRun:
    """Run the study's missing jobs, `jobs` at a time on `backend` (`prune_gym.cluster.open_backend`),
    each with `threads` CPU threads (default: this machine's cores / jobs), on the weights
    `study_checkpoints` picks.

    Jobs start in the study's order (seed by seed), a transfer once its source is done; one whose
    source failed is not started.
    Jobs in `committed` (job key -> trials of its run in the committed data, made on another
    machine) are skipped, unless a job still to run needs one as its source: then it runs again here.
    `committed_digests` (model -> the digest of the weights the committed data pruned) refuses
    a study that would prune other weights, before any search starts.
    """
    out = Path(out)
    paths = study_checkpoints(study, checkpoint, data_root, device, progress, checkpoints)
    for model, digest in (committed_digests or {}).items():
        found = checkpoint_digest(paths[model]) if model in paths else digest
        if found != digest:
            raise PruneGymError(f"the committed data pruned {model} weights {digest[:12]}, and {paths[model]} holds "
                                f"{found[:12]}: run on the committed checkpoint, or give the study another --data")
    result = StudyRun()
    all_jobs = study.jobs()
    committed = committed or {}
    waiting = [job for job in all_jobs if not _finished(out, job, result, dict(study.env_options))]
    needed = {job.source.key for job in waiting if job.source and job.key not in committed}
    for job in [job for job in waiting if job.key in committed and job.key not in needed]:
        waiting.remove(job)
        all_jobs.remove(job)  # nor counted by the progress bar
        result.outcomes[job.key] = "skipped" if committed[job.key] == job.trials else (
            f"failed: the committed data holds a run of {committed[job.key]} trials, the study asks for {job.trials}")
    with open_backend(backend, address, jobs, device, threads) as runner:
        bar = tqdm(total=sum(j.trials for j in all_jobs), initial=_trials_done(out, all_jobs), desc="study",
                   unit="trial", disable=not progress)  # initial: the rate counts only this run's trials
        bar.write(f"study: searches run on {runner.description}")
        running: dict[Task, Job] = {}
        while waiting or running:
            for job in list(waiting):
                source_outcome = result.outcomes.get(job.source.key) if job.source else "skipped"
                if source_outcome in ("skipped", "done"):
                    if len(running) >= jobs:
                        continue  # the backend would queue it by when its source finished: the study's order decides
                    config = job.config(study.dataset, device, paths[job.model], data_root,
                                        {**dict(study.env_options), **(env_kwargs or {})})
                    library = history_of(out, job.source) if job.source else None
                    running[runner.submit(search_to_completion, config, history_of(out, job), library)] = job
                    waiting.remove(job)
                elif source_outcome is not None:  # the source failed
                    result.outcomes[job.key] = f"not started: its source {job.source.key} failed"
                    waiting.remove(job)
            runner.poll(list(running))
            for task in [task for task in running if task.done]:
                job = running.pop(task)
                result.outcomes[job.key] = "done" if task.error is None else f"failed: {task.error}"
                if task.error is not None:
                    bar.write(f"{job.key} failed: {task.error}")
            bar.update(_trials_done(out, all_jobs) - bar.n)
            if running:
                time.sleep(poll_seconds)
        bar.close()
    return result


def _finished(out: Path, job: Job, result: StudyRun, env_options: Mapping[str, Any]) -> bool:
    """Whether `job`'s file already holds a finished run; records its outcome: skipped, or failed when
    that run had another trial budget, other scenario options (another study's, in the same directory)
    or other settings (a variant whose settings changed under the same name)."""
    path = history_of(out, job)
    status, trials = job_status(path)
    if status == "finished":
        with HistoryStore(path) as store:
            info = store.find_runs()[-1]
        options = _scenario_options(info.settings.get("env_kwargs", {}))
    if status == "finished" and trials != job.trials:
        result.outcomes[job.key] = (f"failed: {path} holds a finished run of {trials} trials, "
                                    f"the study asks for {job.trials}; use another output directory")
    elif status == "finished" and options != _scenario_options(env_options):
        result.outcomes[job.key] = (f"failed: {path} holds a finished run with env options {options}, the study "
                                    f"asks for {_scenario_options(env_options)}; use another output directory")
    elif status == "finished" and not _same_settings(info, job):
        result.outcomes[job.key] = (f"failed: {path} holds a finished run with other settings than {job.key}'s; "
                                    f"give the variant another name, or use another output directory")
    elif status == "finished":
        result.outcomes[job.key] = "skipped"
    return status == "finished"


def _trials_done(out: Path, jobs: Sequence[Job]) -> int:
    return sum(min(job.trials, job_status(history_of(out, job))[1]) for job in jobs)


def main() -> None:
    from prune_gym.benchmarks.data_export import (DATA, committed_digests, committed_jobs,  # they need the study
                                                  differing_reruns, export_study, require_data_folder)
    from prune_gym.benchmarks.report import write_report

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", default="core", choices=list(STUDIES))
    parser.add_argument("--out", default="runs/study", help="where the jobs' history files and the report go")
    parser.add_argument("--data", type=Path, default=DATA,
                        help="the committed data: jobs whose runs it holds are skipped, and finished runs are "
                             "exported into it")
    parser.add_argument("--jobs", type=int, default=1, help="searches at once (each gets cores / jobs threads)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--backend", default="auto", choices=["auto", "ray", "processes"],
                        help="where searches run: Ray (the default when installed) or local processes")
    parser.add_argument("--address", help="a Ray cluster to run on (default: $RAY_ADDRESS, else a local instance)")
    parser.add_argument("--threads", type=int, help="CPU threads per search (default: cores / jobs here, 1 on a "
                                                    "Ray cluster)")
    parser.add_argument("--checkpoint", help="trained weights, for a study of one model (default: the committed "
                                             "ones in benchmarks/checkpoints/, pretrained first where missing)")
    parser.add_argument("--data-root")
    parser.add_argument("--agents", nargs="+", choices=list(SEARCHERS), metavar="AGENT",
                        help=f"the searchers to cross with the study's cells (default: {DEFAULT_SEARCHER}; "
                             f"choices: {', '.join(SEARCHERS)})")
    parser.add_argument("--models", nargs="+", metavar="MODEL",
                        help="run (and report) only the searches on these models (MODEL, or MODEL:RATIO for "
                             "one ratio), and the sources their transfers start from")
    parser.add_argument("--sources", nargs="+", metavar="MODEL",
                        help="run (and report) only the transfers from these sources (MODEL, or MODEL:RATIO)")
    parser.add_argument("--methods", nargs="+", metavar="METHOD",
                        help="run (and export) only these of the study's methods or variants, by name")
    parser.add_argument("--seeds", nargs="+", type=int, metavar="SEED",
                        help="run (and export) these seeds instead of the study's, e.g. more seeds where an "
                             "interval is too wide; the report takes every seed the data hold")
    parser.add_argument("--adopt", nargs="+", default=[], metavar="HISTORY",
                        help="first copy matching finished runs from these history files into the study")
    parser.add_argument("--report-only", action="store_true", help="write the report from the committed data")
    args = parser.parse_args()
    require_data_folder(parser, args.data)
    study, out = STUDIES[args.study], Path(args.out)
    if args.agents:
        study = replace(study, agents=tuple(args.agents))
    if args.models:
        study = study.restricted(args.models)
    if args.sources:
        study = study.from_sources(args.sources)
    if args.methods:
        try:
            study = study.with_methods(args.methods)
        except PruneGymError as exc:
            parser.error(str(exc))
    if args.seeds:
        try:
            study = study.with_seeds(args.seeds)
        except PruneGymError as exc:
            parser.error(str(exc))
    for key in adopt(study, out, args.adopt):
        print(f"adopted {key}")
    if not args.report_only:
        committed = committed_jobs(args.study, args.data)
        if study.reference:
            baselines = {job.key for job in study.jobs() if job.method == "baseline"}
            committed.update({k: n for k, n in committed_jobs(study.reference, args.data).items() if k in baselines})
        outcome = run_study(study, out, args.jobs, args.device, args.checkpoint, args.data_root,
                            backend=args.backend, address=args.address, threads=args.threads,
                            committed=committed,
                            committed_digests=committed_digests(args.study, args.data))
        for key, why in outcome.failed.items():
            print(f"{key}: {why}")
        settings = {"device": args.device, "checkpoint": args.checkpoint, "data_root": args.data_root,
                    "env_kwargs": dict(study.env_options)}
        for line in differing_reruns(args.study, study, out, args.data):
            print(line)
        export_study(args.study, study, out, args.data, settings)
    try:
        print(write_report(args.study, out / "report", args.data))
    except PruneGymError as exc:
        parser.exit(2, f"study: error: {exc}\n")


if __name__ == "__main__":
    main()
