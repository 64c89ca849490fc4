"""A pruning search: an agent plays ChannelPrune-v0 for a number of trials, each recorded in the history.

Nothing is lost when the process dies. A finished trial is committed once the agent has
trained on it (at the next rollout's start): first the agent's checkpoint is replaced,
holding the trial count and the trial itself, then the trial is appended to the history.
On `resume`, a trial that reached the checkpoint but not the history is appended from the
checkpoint, so trials are neither lost nor duplicated.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from tqdm.auto import tqdm

from prune_gym import ENV_ID
from prune_gym.agents.assistant import Assistant
from prune_gym.agents.augmentation import augmented_episodes, preload
from prune_gym.agents.ddpg import AMCDDPG
from prune_gym.agents.transfer import SOURCE_WEIGHTS, load_source_weights
from prune_gym.errors import PruneGymError
from prune_gym.history import HistoryStore, RunInfo, RunWriter, Scenario

# Each method, and the random warm-up episodes it plays unless told otherwise: a transfer
# starts from a trained actor, so it acts with it from the first trial. "assistant" is the
# paper's full method: augmented transfer with the assistant acting in the first trials.
METHODS = {"baseline": 100, "vanilla": 0, "augmented": 0, "assistant": 0}
TRANSFER_METHODS = ("vanilla", "augmented", "assistant")  # start from the source's weights
AUGMENTED_METHODS = ("augmented", "assistant")  # invariant actor, replay buffer preloaded from the source
WEIGHTS_EVERY = 100  # trials between snapshots of the agent's weights in the history


@dataclass
class SearchConfig:
    model: str = "resnet20"
    dataset: str = "fashion-mnist"
    ratio: float = 0.5
    trials: int = 300
    method: str = "baseline"
    seed: int = 0
    device: str = "auto"
    warmup: int | None = None  # None: the method's default (METHODS)
    checkpoint: str | None = None
    data_root: str | None = None
    env_kwargs: dict[str, Any] = field(default_factory=dict)  # e.g. calibration_images
    agent_kwargs: dict[str, Any] = field(default_factory=dict)  # AMCDDPG settings (sigma0, actor_lr, ...)
    source: str | None = None  # transfer methods and the assistant: the run to start from
    assistant: dict[str, Any] | None = None  # Assistant settings ({} for the defaults); None: no assistant

    @property
    def assistant_settings(self) -> dict[str, Any] | None:
        """The assistant's settings, or None when it does not act; method 'assistant' implies the defaults."""
        if self.assistant is None and self.method == "assistant":
            return {}
        return self.assistant

    @property
    def warmup_episodes(self) -> int:
        return METHODS[self.method] if self.warmup is None else self.warmup

    @property
    def sources(self) -> list[str]:
        return [self.source] if self.source is not None else []

    @property
    def agent_settings(self) -> dict[str, Any]:
        """AMCDDPG's settings: `agent_kwargs` and what the method implies (augmented: the invariant actor)."""
        implied = {"invariant_actor": True} if self.method in AUGMENTED_METHODS else {}
        return {**self.agent_kwargs, **implied}


@dataclass
class SearchResult:
    run_id: str
    accuracies: np.ndarray  # per trial, reward split
    best_trial: int
    best_accuracy: float
    best_policy: list[float]  # kept fraction per unit
    best_macs_ratio: float


@dataclass
class Trial:
    observations: np.ndarray
    actions: np.ndarray
    reward: float
    accuracy: float
    macs_ratio: float
    origin: str
    wall_time: float
    admitted: bool = True  # whether it entered the replay buffer (the assistant may refuse it)


class AgentCheckpoints:
    """The agent's state after each committed trial, next to the history file: <history>.agents/<run>/."""

    def __init__(self, history_path: Path, run_id: str):
        self.dir = Path(f"{history_path}.agents") / run_id
        self.dir.mkdir(parents=True, exist_ok=True)

    def save(self, agent: AMCDDPG, trials: int, last: Trial) -> None:
        agent.save(self.dir / f"agent-{trials}.zip")
        agent.save_replay_buffer(self.dir / f"replay-{trials}.pkl")
        state = {"trials": trials, "last_trial": {k: (v.tolist() if isinstance(v, np.ndarray) else v)
                                                  for k, v in asdict(last).items()}}
        tmp = self.dir / "state.json.tmp"
        tmp.write_text(json.dumps(state))
        os.replace(tmp, self.dir / "state.json")  # the commit point
        for old in self.dir.glob("*-*.*"):
            if old.stem.rsplit("-", 1)[1] != str(trials):
                old.unlink()

    def load(self, env: gym.Env) -> tuple[AMCDDPG | None, int, Trial | None]:
        state_path = self.dir / "state.json"
        if not state_path.exists():
            return None, 0, None
        state = json.loads(state_path.read_text())
        n = state["trials"]
        agent = AMCDDPG.load(self.dir / f"agent-{n}.zip", env=env, device="cpu")
        agent.load_replay_buffer(self.dir / f"replay-{n}.pkl")
        last = {k: (np.asarray(v, dtype=np.float32) if isinstance(v, list) else v)
                for k, v in state["last_trial"].items()}
        return agent, n, Trial(**last)


class SearchRecorder(BaseCallback):
    """Collects each episode as a trial and commits it to the checkpoint and the history."""

    def __init__(self, writer: RunWriter, checkpoints: AgentCheckpoints, trials: int, done: int,
                 accuracies: list[float], progress: bool):
        super().__init__()
        self.writer, self.checkpoints = writer, checkpoints
        self.committed = done
        self.accuracies = accuracies
        self.bar = tqdm(total=trials, initial=done, desc=f"search {writer.run_id}", unit="trial", disable=not progress)
        self._observations: list[np.ndarray] = []
        self._actions: list[float] = []
        self._start = time.perf_counter()
        self._pending: Trial | None = None
        self._origin = ""

    def _on_step(self) -> bool:
        info = self.locals["infos"][0]
        if not self._observations:
            self._origin = self.model.last_action_origin
        self._observations.append(np.asarray(self.model._last_obs[0], dtype=np.float32))
        self._actions.append(info["kept_fraction"])
        if self.locals["dones"][0]:
            self._pending = Trial(np.stack(self._observations), np.asarray(self._actions, dtype=np.float32),
                                  float(self.locals["rewards"][0]), info["accuracy"], info["macs_ratio"],
                                  self._origin, time.perf_counter() - self._start)
            self._observations, self._actions = [], []
        return True

    def _on_rollout_start(self) -> None:
        self._commit()
        self._start = time.perf_counter()

    def _on_training_end(self) -> None:
        self._commit()
        self.bar.close()

    def _commit(self) -> None:
        if self._pending is None:
            return
        # The agent decides admission after this callback saw the episode end, so it is read now.
        trial, self._pending = replace(self._pending, admitted=self.model.last_admitted), None
        self.checkpoints.save(self.model, self.committed + 1, trial)
        commit_trial(self.writer, trial, self.model)
        self.committed += 1
        self.accuracies.append(trial.accuracy)
        self.logger.record("trial/accuracy", trial.accuracy)
        self.logger.record("trial/best_accuracy", max(self.accuracies))
        self.logger.record("trial/macs_ratio", trial.macs_ratio)
        self.bar.set_postfix(best=f"{max(self.accuracies):.4f}", acc=f"{trial.accuracy:.4f}",
                             macs=f"{trial.macs_ratio:.3f}", refresh=False)
        self.bar.update(1)


def commit_trial(writer: RunWriter, trial: Trial, agent: AMCDDPG) -> None:
    """Append the trial to the history, with a snapshot of the agent's weights every WEIGHTS_EVERY trials."""
    writer.append_trial(**asdict(trial))
    if writer.n_trials % WEIGHTS_EVERY == 0:
        writer.save_weights(f"trial-{writer.n_trials}", agent.actor.state_dict(), agent.critic.state_dict())


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
    several searches may share it), else from `history_path`.
    """
    if config.method not in METHODS:
        raise PruneGymError(f"unknown method {config.method!r}; choose one of: {', '.join(METHODS)}")
    if config.trials < 1 or config.warmup_episodes < 0:
        raise PruneGymError("trials must be positive and warmup non-negative")
    needs_source = config.method in TRANSFER_METHODS or config.assistant_settings is not None
    if needs_source != (config.source is not None):
        raise PruneGymError(f"a source run is needed by, and only by, the transfer methods "
                            f"({', '.join(TRANSFER_METHODS)}) and the assistant; method {config.method!r}, "
                            f"assistant {config.assistant_settings is not None}, source {config.source!r}")
    history_path = Path(history_path)
    env = env or make_env(config)
    n_units = len(env.unwrapped.units)
    with HistoryStore(history_path, "a") as store:
        writer, agent, done = _open_run(store, history_path, env, config, resume)
        checkpoints = AgentCheckpoints(history_path, writer.run_id)
        if agent is None:
            agent = _new_agent(config, env, tensorboard_dir)
            if config.source is not None:
                _start_from_source(agent, config, env, HistoryStore(library) if library else store)
        accuracies = list(store.read_run(writer.run_id).accuracies)
        recorder = SearchRecorder(writer, checkpoints, config.trials, done, accuracies, progress)
        remaining = config.trials - done
        if remaining > 0:
            agent.learn(total_timesteps=remaining * n_units, callback=recorder, log_interval=1,
                        reset_num_timesteps=done == 0, tb_log_name=writer.run_id)
        run = store.read_run(writer.run_id)
        best = int(np.argmax(run.accuracies))
        writer.save_weights(SOURCE_WEIGHTS, agent.actor.state_dict(), agent.critic.state_dict())
        writer.finish(best_policy=run.actions[best])
    return SearchResult(writer.run_id, run.accuracies, best, float(run.accuracies[best]),
                        run.actions[best].tolist(), float(run.macs_ratios[best]))


def search_to_completion(config: SearchConfig, history: str | Path, library: str | Path | None = None, *,
                         threads: int | None = None, device: str | None = None, progress: bool = False) -> str:
    """Bring `config`'s search in `history` to its last trial, whatever state it is in; its run id.

    A finished run is left alone, an interrupted one resumed, else a new one started: so a
    search rerun after its process died goes on from its last recorded trial. The unit of
    work of source selection and the benchmark study (`prune_gym.cluster`), which set the
    process's `threads` and the `device`.
    """
    if threads is not None:
        torch.set_num_threads(threads)
    if device is not None:
        config = replace(config, device=device)
    history = Path(history)
    resume = False
    if history.exists():
        with HistoryStore(history) as store:
            finished = [r for r in runs_of(store, config, "finished") if r.n_trials == config.trials]
            if finished:
                return finished[-1].run_id
            resume = bool(runs_of(store, config, "interrupted"))
    history.parent.mkdir(parents=True, exist_ok=True)
    return run_search(config, history, resume=resume, progress=progress, library=library).run_id


def _start_from_source(agent: AMCDDPG, config: SearchConfig, env: gym.Env, sources: HistoryStore) -> None:
    """What the search takes from its source: the weights (transfers), the trials rewritten for
    the target preloaded (augmented, the last replay buffer's worth), the assistant's records (all)."""
    target = scenario_of(env)
    if config.method in TRANSFER_METHODS:
        load_source_weights(agent, sources, config.source, target)
    assistant = config.assistant_settings
    if config.method in AUGMENTED_METHODS or assistant is not None:
        source_run = sources.read_run(config.source)
        last = source_run.n_trials if assistant is not None else agent.buffer_episodes
        episodes = augmented_episodes(source_run, env.unwrapped, target, last)
        if config.method in AUGMENTED_METHODS:
            preload(agent, episodes[-agent.buffer_episodes:])
        if assistant is not None:
            agent.assistant = Assistant(episodes, seed=config.seed, **assistant)


def runs_of(store: HistoryStore, config: SearchConfig, status: str) -> list[RunInfo]:
    """The runs in `store` with `config`'s scenario, method, seed, source and agent settings, and this status."""
    runs = store.find_runs(config.model, config.dataset, config.ratio, config.method, status)
    return [r for r in runs if r.seed == config.seed and r.sources == config.sources
            and r.settings.get("agent_kwargs", {}) == config.agent_settings
            and r.settings.get("assistant") == config.assistant_settings]


def _new_agent(config: SearchConfig, env: gym.Env, tensorboard_dir: str | Path | None) -> AMCDDPG:
    return AMCDDPG("MlpPolicy", env, warmup_episodes=config.warmup_episodes, seed=config.seed, device="cpu",
                   tensorboard_log=str(tensorboard_dir) if tensorboard_dir else None, **config.agent_settings)


def _open_run(store: HistoryStore, history_path: Path, env: gym.Env, config: SearchConfig,
              resume: bool) -> tuple[RunWriter, AMCDDPG | None, int]:
    """A new run, or the interrupted one to resume with its agent and committed trial count."""
    scenario = scenario_of(env)
    if not resume:
        settings = {k: v for k, v in asdict(config).items() if k not in ("device", "data_root", "source")}
        settings["warmup"], settings["agent_kwargs"] = config.warmup_episodes, config.agent_settings
        settings["assistant"] = config.assistant_settings
        return store.start_run(scenario, config.method, settings, config.seed, config.sources), None, 0
    candidates = runs_of(store, config, "interrupted")
    if not candidates:
        raise PruneGymError(f"no interrupted {config.method} run of {scenario.model} on {scenario.dataset} at "
                            f"p={scenario.target_ratio} with seed {config.seed} in {history_path} to resume")
    writer = store.resume_run(candidates[-1].run_id)
    agent, done, last = AgentCheckpoints(history_path, writer.run_id).load(env)
    if agent is not None and writer.n_trials == done - 1:  # killed between checkpoint and history
        commit_trial(writer, last, agent)
    if writer.n_trials != done:
        raise PruneGymError(f"run {writer.run_id} in {history_path} has {writer.n_trials} trials but its agent "
                            f"checkpoint has {done}: cannot resume it consistently")
    return writer, agent, done
