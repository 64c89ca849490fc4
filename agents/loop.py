"""The trial loop: any searcher plays ChannelPrune-v0 for a number of trials, each recorded in the history.

The loop owns the env, the history, the checkpoints and resume, for every searcher alike
(`prune_gym.agents.searcher`). Nothing is lost when the process dies: once the searcher
has learned from a finished trial, first its checkpoint is replaced, holding the trial
count and the trial itself, then the trial is appended to the history. On `resume`, a
trial that reached the checkpoint but not the history is appended from the checkpoint,
so trials are neither lost nor duplicated.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.logger import Logger, configure
from tqdm.auto import tqdm

from prune_gym import ENV_ID
from prune_gym.agents.assistant import Assistant, AssistedSearcher
from prune_gym.agents.augmentation import augmented_episodes
from prune_gym.agents.checkpoints import SearcherCheckpoints
from prune_gym.agents.config import SearchConfig
from prune_gym.agents.recorder import commit_trial, play_trial
from prune_gym.agents.searcher import Searcher
from prune_gym.agents.transfer import SOURCE_WEIGHTS, check_weight_source, load_source_weights
from prune_gym.devices import device_kind
from prune_gym.errors import PruneGymError
from prune_gym.history import HistoryStore, RunInfo, RunWriter, Scenario


@dataclass
class SearchResult:
    run_id: str
    accuracies: np.ndarray  # per trial, reward split
    best_trial: int
    best_accuracy: float
    best_policy: list[float]  # kept fraction per unit
    best_macs_ratio: float


def make_env(config: SearchConfig) -> gym.Env:
    return gym.make(ENV_ID, model=config.model, dataset=config.dataset, target_ratio=config.ratio,
                    device=config.device, checkpoint=config.checkpoint, data_root=config.data_root,
                    **config.env_kwargs)


def scenario_of(env: gym.Env) -> Scenario:
    unwrapped = env.unwrapped
    names, features, table = unwrapped.unit_table()
    workload = unwrapped.workload
    return Scenario(workload.model_name, workload.dataset, workload.digest, unwrapped.target_ratio,
                    unwrapped.reward_kind, names, features, table)


def run_search(config: SearchConfig, history_path: str | Path, resume: bool = False, progress: bool = True,
               tensorboard_dir: str | Path | None = None, env: gym.Env | None = None,
               library: str | Path | None = None) -> SearchResult:
    """Search for `config.trials` trials (in all, counting a resumed run's earlier ones).

    `env`, if given, must be `make_env(config)`; it is left on its last trial. A transfer
    reads its source run from `library`, another history file, if given (only read, so
    several searches may share it), else from `history_path`. Bad settings are refused
    before the history file is touched.
    """
    history_path = Path(history_path)
    config = resolve_search(config, Path(library or history_path))
    env = env or make_env(config)
    scenario = scenario_of(env)
    if config.source is not None:
        _check_source(config, Path(library or history_path), scenario)
    if resume:
        _check_resumable(config, history_path, scenario)
    with HistoryStore(history_path, "a") as store:
        writer, searcher, done = _open_run(store, history_path, env, scenario, config, resume)
        if searcher is None:
            searcher = config.searcher_class(env, seed=config.seed, warmup=config.warmup, **config.agent_kwargs)
            if config.source is not None:
                searcher = _start_from_source(searcher, config, env, scenario,
                                              HistoryStore(library) if library else store)
        best = float(max(store.read_run(writer.run_id).accuracies, default=0.0))
        _play(env, searcher, writer, SearcherCheckpoints(history_path, writer.run_id), range(done, config.trials),
              best, config.seed, progress, tensorboard_dir)
        run = store.read_run(writer.run_id)
        best = int(np.argmax(run.accuracies))
        weights = searcher.weights()
        if weights:
            writer.save_weights(SOURCE_WEIGHTS, weights)
        writer.finish(best_policy=run.actions[best])
    return SearchResult(writer.run_id, run.accuracies, best, float(run.accuracies[best]),
                        run.actions[best].tolist(), float(run.macs_ratios[best]))


def _play(env: gym.Env, searcher: Searcher, writer: RunWriter, checkpoints: SearcherCheckpoints, trials: range,
          best: float, seed: int, progress: bool, tensorboard_dir: str | Path | None) -> None:
    """Each of `trials` played, learned from, checkpointed, then recorded; `best` is the accuracy to beat."""
    logger = (configure(str(Path(tensorboard_dir) / writer.run_id), ["tensorboard"]) if tensorboard_dir
              else Logger(folder=None, output_formats=[]))
    searcher.set_logger(logger)
    with tqdm(total=trials.stop, initial=trials.start, desc=f"search {writer.run_id}", unit="trial",
              disable=not progress) as bar:
        for t in trials:
            trial = play_trial(env, searcher, t, seed=seed if t == trials.start else None)
            trial.admitted = bool(searcher.admits(trial))
            searcher.learn(trial)
            checkpoints.save(searcher, t + 1, trial)
            commit_trial(writer, trial, searcher)
            best = max(best, trial.accuracy)
            for key, value in (("accuracy", trial.accuracy), ("best_accuracy", best),
                               ("macs_ratio", trial.macs_ratio)):
                logger.record(f"trial/{key}", value)
            logger.dump(step=t + 1)
            bar.set_postfix(best=f"{best:.4f}", acc=f"{trial.accuracy:.4f}", macs=f"{trial.macs_ratio:.3f}",
                            refresh=False)
            bar.update(1)
    logger.close()


def search_to_completion(config: SearchConfig, history: str | Path, library: str | Path | None = None, *,
                         threads: int | None = None, device: str | None = None, progress: bool = False,
                         env: gym.Env | None = None) -> str:
    """Bring `config`'s search in `history` to its last trial, whatever state it is in; its run id.

    A finished run is left alone, an interrupted one resumed, else a new one started: so a
    search rerun after its process died goes on from its last recorded trial. The unit of
    work of source selection and the benchmark study (`prune_gym.cluster`), which set the
    process's `threads` and the `device`. `env`, if given, is `make_env(config)`, played as
    `run_search` plays it.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    if device is not None:
        config = replace(config, device=device)
    history = Path(history)
    config = resolve_search(config, Path(library or history))
    resume = False
    if history.exists():
        with HistoryStore(history) as store:
            finished = [r for r in runs_of(store, config, "finished") if r.n_trials == config.trials]
            if finished:
                return finished[-1].run_id
            resume = bool(runs_of(store, config, "interrupted"))
    history.parent.mkdir(parents=True, exist_ok=True)
    return run_search(config, history, resume=resume, progress=progress, library=library, env=env).run_id


def _check_source(config: SearchConfig, library: Path, target: Scenario) -> None:
    """Refuse a source run that is missing, unfinished, damaged, or whose weights this searcher cannot take;
    before the search writes anything."""
    if not library.exists():
        raise PruneGymError(f"no history file at {library} to read source run {config.source} from")
    with HistoryStore(library) as store:
        info = store.run_info(config.source)
        if info is None or info.status != "finished":
            raise PruneGymError(f"run {config.source} in {library} is {info.status if info else 'missing'}; a "
                                f"search starts only from a finished run")
        store.read_run(config.source)  # verifies its checksums
        if config.takes_source_weights:
            check_weight_source(info, config.agent, config.invariant_actor, target.feature_names)
            store.load_weights(config.source, SOURCE_WEIGHTS)


def resolve_search(config: SearchConfig, library: Path) -> SearchConfig:
    """`config` resolved (`SearchConfig.resolve`) with its source run's ratio and model from `library`, where it
    has a source that `library` holds (`_check_source` refuses one it lacks); reads nothing else."""
    if config.resolved:
        return config
    info = None
    if config.source is not None and library.exists():
        with HistoryStore(library) as store:
            info = store.run_info(config.source)
    if info is None:
        return config.resolve()
    return config.resolve(info.scenario.target_ratio, info.scenario.model)


def _start_from_source(searcher: Searcher, config: SearchConfig, env: gym.Env, target: Scenario,
                       sources: HistoryStore) -> Searcher:
    """What the search takes from its source: the weights (transfers, where the searcher has some),
    the trials rewritten for the target (augmented), the assistant's records (all of them)."""
    if config.takes_source_weights:
        load_source_weights(searcher, sources, config.source, target, config.invariant_actor)
    preloads = config.method_record.trials
    if preloads or config.assistant is not None:
        source_run = sources.read_run(config.source)
        # Each rewrite once, and only those the search uses.
        rewritten = functools.cache(lambda rescale: augmented_episodes(source_run, env.unwrapped, target,
                                                                       source_run.n_trials, rescale))
        if preloads:
            searcher.preload(rewritten(config.rescale))
        if config.assistant is not None:
            searcher = AssistedSearcher(searcher, Assistant(rewritten(config.records_rescale), seed=config.seed,
                                                            ratio=env.unwrapped.target_ratio, **config.assistant))
    return searcher


def runs_of(store: HistoryStore, config: SearchConfig, status: str, *, any_agent: bool = False) -> list[RunInfo]:
    """The runs in `store` with `config`'s scenario, method, seed, source, searcher and its settings,
    and this status."""
    runs = store.find_runs(config.model, config.dataset, config.ratio, config.label, status)
    same = [r for r in runs if r.seed == config.seed and r.sources == config.sources]
    if any_agent:
        return same
    return [r for r in same if r.agent == config.agent and config.searched_like(r.settings)]


def _check_resumable(config: SearchConfig, history_path: Path, scenario: Scenario) -> None:
    """Refuse a resume that finds no interrupted run of this search, naming the one it may have meant, or
    one that would go on pruning other weights; read-only, so that the history file is left as it was."""
    store = HistoryStore(history_path) if history_path.exists() else None
    interrupted = runs_of(store, config, "interrupted") if store is not None else []
    if interrupted and interrupted[-1].scenario.checkpoint_digest != scenario.checkpoint_digest:
        raise PruneGymError(f"run {interrupted[-1].run_id} in {history_path} pruned weights "
                            f"{interrupted[-1].scenario.checkpoint_digest[:12]}, this search's checkpoint holds "
                            f"{scenario.checkpoint_digest[:12]}: resume it with the checkpoint it started with")
    if interrupted and interrupted[-1].scenario.unit_names != scenario.unit_names:
        run = interrupted[-1]
        raise PruneGymError(f"run {run.run_id} in {history_path} pruned {len(run.scenario.unit_names)} units, this "
                            f"search's env has {len(scenario.unit_names)}: resume it with the env options it started "
                            f"with ({run.settings.get('env_kwargs', {})})")
    if interrupted:
        return
    others = runs_of(store, config, "interrupted", any_agent=True) if store is not None else []
    if others:
        other = others[-1]
        raise PruneGymError(f"run {other.run_id} in {history_path} was interrupted with agent {other.agent} "
                            f"(settings {other.settings.get('agent_kwargs', {})}), not {config.agent} "
                            f"({config.agent_kwargs}): resume it with the same agent and settings")
    raise PruneGymError(f"no interrupted {config.label} run of {config.model} on {config.dataset} at "
                        f"p={config.ratio} with seed {config.seed} in {history_path} to resume")


def _open_run(store: HistoryStore, history_path: Path, env: gym.Env, scenario: Scenario, config: SearchConfig,
              resume: bool) -> tuple[RunWriter, Searcher | None, int]:
    """A new run, or the interrupted one to resume with its searcher and committed trial count."""
    if not resume:
        settings = {**config.recorded_settings(), "device_kind": device_kind(env.unwrapped.device)}
        return store.start_run(scenario, config.label, settings, config.seed, config.sources), None, 0
    writer = store.resume_run(runs_of(store, config, "interrupted")[-1].run_id)
    saved_class = AssistedSearcher if config.assistant is not None else config.searcher_class
    searcher, done, last = SearcherCheckpoints(history_path, writer.run_id).load(saved_class, env)
    if searcher is not None and writer.n_trials == done - 1:  # killed between checkpoint and history
        commit_trial(writer, last, searcher)
    if writer.n_trials != done:
        raise PruneGymError(f"run {writer.run_id} in {history_path} has {writer.n_trials} trials but its searcher "
                            f"checkpoint has {done}: cannot resume it consistently")
    return writer, searcher, done
