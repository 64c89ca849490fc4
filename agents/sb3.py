"""Stable-Baselines3 algorithms as searchers: the trial loop drives them one step at a time.

SB3's `learn()` owns its own loop; here the trial loop owns the env, so each adapter does
per step and per trial what SB3's `collect_rollouts` and `learn` do, through SB3's own
extension points:
* `OffPolicySearcher` (DDPG, TD3, SAC): `act` is the algorithm's `_sample_action` on the
  observation; `learn` adds the trial's transitions to the replay buffer (an
  `EpisodeRewardReplayBuffer`: the final reward on every transition), counts its steps,
  and trains one gradient step per step once the warm-up is over, as SB3 does after an
  episode with `train_freq=(1, "episode")`. Trials it did not play (warm-up, assistant)
  enter the buffer too, when admitted; `preload` adds a source's rewritten trials.
* `OnPolicySearcher` (PPO): each of its own trials is one rollout (`n_steps` = units),
  so a rollout never spans two trials and the return of every step is built from the
  trial's final reward; it learns from nothing else.
The agent acts on the CPU (its networks are small); pruning runs on the env's device.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.utils import obs_as_tensor

from prune_gym.agents.augmentation import Episode, add_episode
from prune_gym.agents.recorder import Trial
from prune_gym.agents.replay import EpisodeRewardReplayBuffer
from prune_gym.agents.searcher import Searcher
from prune_gym.errors import PruneGymError

AGENT_FILE, REPLAY_FILE = "agent.zip", "replay.pkl"


class SB3Searcher(Searcher):
    """An SB3 algorithm as a searcher; subclasses set `algorithm` and build it in `_make_agent`."""

    origin = "actor"
    algorithm: ClassVar[type[BaseAlgorithm]]
    _not_pickled = ("env", "agent")

    def __init__(self, env: gym.Env, **kwargs: Any):
        super().__init__(env, **kwargs)
        self.agent = self._make_agent(env)
        self.agent.set_logger(Logger(folder=None, output_formats=[]))

    def _make_agent(self, env: gym.Env) -> BaseAlgorithm:
        raise NotImplementedError

    def set_logger(self, logger: Logger) -> None:
        self.agent.set_logger(logger)

    def networks(self) -> dict[str, torch.nn.Module]:
        """The networks `weights` saves and `load_weights` fills."""
        return {"policy": self.agent.policy}

    def weights(self) -> dict[str, Mapping[str, Any]]:
        return {name: network.state_dict() for name, network in self.networks().items()}

    def load_weights(self, weights: Mapping[str, Mapping[str, np.ndarray]]) -> None:
        networks = self.networks()
        if set(weights) != set(networks):
            raise PruneGymError(f"the stored weights hold {sorted(weights)}, this {self.name} agent has "
                                f"{sorted(networks)}: they come from another kind of agent")
        for name, network in networks.items():
            expected = {k: tuple(p.shape) for k, p in network.state_dict().items()}
            found = {k: tuple(np.shape(v)) for k, v in weights[name].items()}
            if expected != found:
                raise PruneGymError(f"the stored {name} does not fit this agent's (shapes {found} against "
                                    f"{expected}): use the same network settings")
            network.load_state_dict({k: torch.as_tensor(v) for k, v in weights[name].items()})
        self._sync_targets()

    def _sync_targets(self) -> None:
        """Copy freshly loaded networks into their target networks."""

    def save(self, directory: Path) -> None:
        super().save(directory)
        self.agent.save(Path(directory) / AGENT_FILE)

    @classmethod
    def load(cls, directory: Path, env: gym.Env) -> SB3Searcher:
        searcher = super().load(directory, env)
        searcher.agent = cls.algorithm.load(Path(directory) / AGENT_FILE, env=env, device="cpu")
        searcher.agent.set_logger(Logger(folder=None, output_formats=[]))
        searcher._attach(env)
        return searcher


class OffPolicySearcher(SB3Searcher):
    """DDPG, TD3, SAC and kin, with their replay buffer."""

    takes_weights = True
    takes_trials = True

    def _begin(self, trial: int) -> str:
        self.agent.policy.set_training_mode(False)
        return self.origin

    def _act(self, observation: np.ndarray, step: int) -> float:
        agent = self.agent
        agent._last_obs = observation[None]
        action, _ = agent._sample_action(agent.learning_starts, agent.action_noise, 1)
        return float(np.asarray(action).reshape(-1)[0])

    def learn(self, trial: Trial) -> None:
        agent = self.agent
        if trial.admitted:
            add_episode(agent, np.vstack([trial.observations, trial.final_observation[None]]), trial.actions,
                        trial.reward)
        agent.num_timesteps += len(trial.actions)
        agent._episode_num += 1
        if agent.action_noise is not None:
            agent.action_noise.reset()
        if agent.num_timesteps > agent.learning_starts and agent.replay_buffer.size() > 0:
            agent.train(batch_size=agent.batch_size, gradient_steps=len(trial.actions))

    def preload(self, episodes: Sequence[Episode]) -> None:
        """The last of the episodes that the replay buffer holds."""
        for episode in episodes[-(self.agent.buffer_size // self.n_units):]:
            add_episode(self.agent, episode.observations, episode.fractions, episode.reward, preloaded=True)

    def networks(self) -> dict[str, torch.nn.Module]:
        return {"actor": self.agent.actor, "critic": self.agent.critic}

    def _sync_targets(self) -> None:
        for name in ("actor", "critic"):
            target = getattr(self.agent, f"{name}_target", None)
            if target is not None:
                target.load_state_dict(getattr(self.agent, name).state_dict())

    def save(self, directory: Path) -> None:
        super().save(directory)
        self.agent.save_replay_buffer(Path(directory) / REPLAY_FILE)

    @classmethod
    def load(cls, directory: Path, env: gym.Env) -> OffPolicySearcher:
        searcher = super().load(directory, env)
        searcher.agent.load_replay_buffer(Path(directory) / REPLAY_FILE)
        return searcher

    def _off_policy_defaults(self) -> dict[str, Any]:
        """What every off-policy algorithm here is built with: one update per episode, after the warm-up."""
        settings = dict(self.settings)
        return {"learning_starts": self.warmup * self.n_units, "train_freq": (1, "episode"), "gradient_steps": -1,
                "replay_buffer_class": EpisodeRewardReplayBuffer,
                "replay_buffer_kwargs": {"moving_average_alpha": settings.pop("moving_average_alpha")},
                "policy_kwargs": {"net_arch": settings.pop("net_arch")}, **settings}


class OnPolicySearcher(SB3Searcher):
    """PPO and kin: one rollout per trial of its own."""

    takes_weights = True
    _not_pickled = ("env", "agent", "_rollout")  # a rollout is spent by its trial's `learn`, before any save

    def _begin(self, trial: int) -> str:
        self.agent.policy.set_training_mode(False)
        self._rollout: list[tuple[np.ndarray, np.ndarray, torch.Tensor, torch.Tensor]] = []
        return self.origin

    def _act(self, observation: np.ndarray, step: int) -> float:
        agent = self.agent
        with torch.no_grad():
            actions, values, log_probs = agent.policy(obs_as_tensor(observation[None], agent.device))
        actions = actions.cpu().numpy()
        self._rollout.append((observation[None], actions, values, log_probs))
        return float(np.clip(actions, agent.action_space.low, agent.action_space.high).reshape(-1)[0])

    def learn(self, trial: Trial) -> None:
        agent = self.agent
        agent.num_timesteps += len(trial.actions)
        if trial.origin != self.origin:
            return  # on-policy: it learns only from the trials it played itself
        buffer = agent.rollout_buffer
        buffer.reset()
        for k, (obs, actions, values, log_probs) in enumerate(self._rollout):
            reward = np.array([trial.reward if k == len(self._rollout) - 1 else 0.0], dtype=np.float32)
            buffer.add(obs, actions, reward, np.array([k == 0]), values, log_probs)
        buffer.compute_returns_and_advantage(last_values=torch.zeros(1, 1), dones=np.array([True]))
        agent.train()

