"""The transfer methods: what a search takes from a source run (`--source`).

* `baseline`: nothing, a search from scratch;
* `vanilla`: the source's final network weights (searchers that have some: the SB3 agents);
* `augmented`: also the source's trials rewritten for this scenario (Eq. 2 and the unit
  mapping), preloaded into an off-policy agent's replay buffer or played first by a black-box
  searcher (its best `warm_start` policies); an actor that has the option predicts the
  invariant a / p;
* `assistant`: augmented, with the assistant choosing the first trials' actions from them.
The assistant (`--assistant`) also joins any other method. A preset
(`prune_gym.agents.presets`) runs one of these with settings of its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from prune_gym.errors import UnknownNameError


@dataclass(frozen=True)
class Method:
    """:param name: what `--method` calls it
    :param weights: starts from the source's network weights, where the searcher has some
    :param trials: starts from the source's trials rewritten for the target
    :param assistant: the assistant acts in the first trials
    """

    name: str
    weights: bool = False
    trials: bool = False
    assistant: bool = False

    @property
    def transfers(self) -> bool:
        """Whether the method takes anything from a source run."""
        return self.weights or self.trials or self.assistant


METHODS = {m.name: m for m in (
    Method("baseline"),
    Method("vanilla", weights=True),
    Method("augmented", weights=True, trials=True),
    Method("assistant", weights=True, trials=True, assistant=True),
)}
PAPER_METHODS = ("vanilla", "augmented", "assistant")  # the paper's transfers, as it describes them


def method(name: str) -> Method:
    """The method called `name`, or a PruneGymError naming the choices."""
    if name not in METHODS:
        raise UnknownNameError("method", name, list(METHODS))
    return METHODS[name]
