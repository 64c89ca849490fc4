"""prune-gym: RL-based channel auto-pruning of CNNs as a Gymnasium environment."""

__version__ = "0.1.0"
