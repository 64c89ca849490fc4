"""prune-gym: RL-based channel auto-pruning of CNNs as a Gymnasium environment.

Importing the package registers ``ChannelPrune-v0`` and the standard tasks (`prune_gym.tasks`)
with Gymnasium (idempotently).
"""

from gymnasium.envs.registration import register, registry

from prune_gym.tasks import register_tasks

__version__ = "0.1.0"

ENV_ID = "ChannelPrune-v0"

if ENV_ID not in registry:
    # No max_episode_steps: an episode ends by termination, never by a TimeLimit truncation,
    # which SB3 would bootstrap from. make_vec's default is the native vector env (one process, one data set).
    register(id=ENV_ID, entry_point="prune_gym.env:ChannelPruneEnv",
             vector_entry_point="prune_gym.vector_env:ChannelPruneVectorEnv")
register_tasks()
