"""Surrogate rewards: a network's accuracy after pruning, predicted from its policy in microseconds.

A fitted surrogate maps a policy, the kept fraction of each unit after the action wall, to
the reward-split accuracy the real env pays for it. It is a small multilayer perceptron fitted
on the committed trials of the benchmarks (`benchmarks/fit_surrogates.py`), one per shipped
network, and stored as package data with how well it ranks real policies it never saw.
The surrogate tasks (`prune_gym.tasks`) pay its prediction instead of pruning, so an agent can
play tens of thousands of episodes a second; the real task stays the one that counts.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from prune_gym.errors import PruneGymError

FORMAT = "prune-gym-surrogate/1"


def surrogate_path(model: str, dataset: str) -> Path:
    """Where the surrogate of `model` on `dataset` ships (package data of `prune_gym.surrogate`)."""
    return Path(str(resources.files("prune_gym.surrogate").joinpath("fitted", f"{model}_{dataset}.npz")))


def policy_features(policies: np.ndarray) -> np.ndarray:
    """A surrogate's inputs: each unit's kept fraction and its logarithm (accuracy falls fastest as a unit nears
    its minimum)."""
    policies = np.asarray(policies, dtype=np.float64)
    return np.concatenate([policies, np.log(np.clip(policies, 1e-3, 1.0))], axis=-1)


@dataclass(frozen=True)
class AccuracySurrogate:
    """A perceptron with ReLU hidden layers: `policy_features` in, the accuracy's logit out.

    :param weights: each layer's weight matrix (inputs, outputs), the last one's output 1
    :param biases: each layer's bias
    :param meta: what it was fitted on and its held-out fidelity (`fidelity` by p)
    """

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    meta: dict[str, Any]

    @property
    def units(self) -> int:
        return self.weights[0].shape[0] // 2

    def predict(self, policies: np.ndarray) -> np.ndarray:
        """The predicted accuracy of each row of `policies` (rows, units), or of one policy (units,)."""
        if np.shape(policies)[-1] != self.units:
            raise ValueError(f"a policy of this surrogate has {self.units} fractions, got {np.shape(policies)[-1]}")
        x = policy_features(policies)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = x @ w + b
            if i < len(self.weights) - 1:
                x = np.maximum(x, 0.0)
        return 1.0 / (1.0 + np.exp(-x[..., 0]))

    def save(self, path: Path) -> None:
        arrays = ({f"w{i}": w.astype(np.float32) for i, w in enumerate(self.weights)}
                  | {f"b{i}": b.astype(np.float32) for i, b in enumerate(self.biases)})
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, meta=np.array(json.dumps({"format": FORMAT, **self.meta}, sort_keys=True)),
                            **arrays)

    @classmethod
    def load(cls, path: Path) -> AccuracySurrogate:
        """The surrogate saved at `path`; a PruneGymError for a missing or damaged file."""
        try:
            with np.load(path) as data:
                meta = json.loads(str(data["meta"]))
                layers = sum(1 for name in data.files if name.startswith("w"))
                weights = tuple(data[f"w{i}"].astype(np.float64) for i in range(layers))
                biases = tuple(data[f"b{i}"].astype(np.float64) for i in range(layers))
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise PruneGymError(f"{path} is not a prune-gym surrogate: {exc}") from None
        if meta.get("format") != FORMAT:
            raise PruneGymError(f"{path} is not a prune-gym surrogate (format {meta.get('format')!r})")
        return cls(weights, biases, meta)


def load_surrogate(model: str, dataset: str) -> AccuracySurrogate:
    """The surrogate that ships for `model` on `dataset`; a PruneGymError naming how to fit one if none does."""
    path = surrogate_path(model, dataset)
    if not path.is_file():
        raise PruneGymError(f"no surrogate of {model} on {dataset} ships with this install of prune-gym (fit one "
                            f"with benchmarks/fit_surrogates.py)")
    return AccuracySurrogate.load(path)
