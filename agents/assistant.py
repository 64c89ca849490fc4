"""Assistant learning (the paper's section V): history-guided actions for a search's first trials.

An actor fresh from transfer still acts poorly for a while, and each poor trial costs a
full pruning episode. For the first `trials` episodes the assistant acts instead, from
records of past pruning (state, kept fraction, accuracy of the trial it belonged to):
* Eq. 3, similarity of a record to the current state: S = prod_x G(h(x), i(x), sigma), G
  an unnormalised Gaussian, so S = 1 for an identical state; the env's observations are
  already normalised to [0, 1];
* Eq. 4, selection metric M = S^omega + P, with P the record's accuracy;
* the first half of its `trials` (exploring) pick at random among the `top_n` records by M,
  the later ones take the best; with `random_every` = k, every k-th of the exploring
  trials plays random fractions around p instead, the baseline's own warm-up
  draw, so that a source whose records are worse than chance (Eq. 2 across a wide
  gap of ratios) cannot leave the search far behind one from scratch (origin "warmup");
* the shrink race (`shrink` < 1, `ShrinkRace`): the first `shrink_race` exploring trials
  alternate between the records as they are and the records shrunk toward each policy's
  mean, and the reading with the higher mean accuracy plays the rest of the explore half;
  with `teach_shrunk` off, the trials played once the shrunk reading has won hold the search's
  best but stay out of the searcher's memory, which a tight cluster of good trials would pin
  to the mapped records' structure;
* the record's kept fraction plus uniform noise of half-width `noise`, which decays
  linearly to zero as the actor takes over;
* admission to the replay buffer: a trial whose accuracy ranks in the top third of the
  last `batch` assistant trials always enters, a lower one with probability
  exp(-0.5 x places below the top third);
* the hand-over (`handover`, `HandOver`): "fixed", the paper's, gives the actor every trial from
  trial `trials` on, however it plays; "earned" makes the actor earn it. From trial `trials` on
  the actor and the assistant take turns, the assistant's noise held at half its first width,
  until an actor trial scores at least the mean of the assistant's last `batch`; by trial
  3 x `trials` the actor has every trial, earned or not;
* the incumbent (`incumbent` = k > 0, `Incumbent`): once the first half of its trials has
  explored the records, the assistant plays around the mean policy of the target's k best
  trials so far (any searcher's) instead of the best record: a search around what this search
  has found, which the records, written at another ratio, can only start. The mean of
  several, as an evolution strategy recombines, because the reward split is noisy (2,000
  images: about 0.9 pp at 80%) and the single best trial is partly luck. Its noise then stays
  at half its first width at least, so that no trial repeats the centre;
* kept turns (`keep_until`): after the hand-over the assistant keeps every other trial (around
  the incumbent, or else from the best record) until trial `keep_until`. An actor that takes
  over plays well under the incumbent for dozens of trials (on ResNet-20 at p = 0.2, 70-73%
  where the assistant plays 76-79%), and the user's best-so-far stalls meanwhile.
The records are the source run's trials rewritten for the target (data augmentation), so
their states are the target's. `AssistedSearcher` lets it act for any searcher: the
searcher learns from the trials the assistant admits (and counts the others), and is
saved with the assistant, its generator and admission batch included, so a resumed
search continues both exactly.
"""

from __future__ import annotations

import math
import pickle
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from prune_gym.agents.augmentation import Episode
from prune_gym.agents.recorder import Trial
from prune_gym.agents.searcher import WARMUP_SIGMA, Searcher, warmup_action
from prune_gym.agents.settings import SettingsSchema
from prune_gym.errors import PruneGymError

ASSISTANT_FILE, INNER_FOLDER = "assistant.pkl", "searcher"
HANDOVERS = ("fixed", "earned")
HANDOVER_LIMIT = 3  # with an earned hand-over, the actor has every trial from HANDOVER_LIMIT x trials on
ADMISSION_DECAY = 0.5  # a trial below the top third enters with probability exp(-decay x places below)
# The assistant's settings (the paper's Eqs. 3-4 values, and the hand-over, incumbent and kept turns off).
ASSISTANT_SETTINGS = SettingsSchema(
    "assistant", "the assistant",
    {"trials": 30, "top_n": 3, "sigma": 0.1, "omega": 2.0, "noise": 0.1, "batch": 10, "handover": "fixed",
     "incumbent": 0, "keep_until": 0, "random_every": 0, "shrink": 1.0, "shrink_race": 4, "teach_shrunk": True},
    choices={"handover": HANDOVERS},
    minimum={"trials": 0, "top_n": 1, "sigma": 1e-9, "omega": 0, "noise": 0, "batch": 1, "incumbent": 0,
             "keep_until": 0, "random_every": 0, "shrink": 0.0, "shrink_race": 2})


def similarity(records: np.ndarray, state: np.ndarray, sigma: float) -> np.ndarray:
    """Eq. 3 for each row of `records` (n, features) against `state` (features,)."""
    return np.exp(-((records - state) ** 2).sum(axis=-1) / (2.0 * sigma**2))


def selection_metric(similarities: np.ndarray, performances: np.ndarray, omega: float) -> np.ndarray:
    """Eq. 4: M = S^omega + P."""
    return similarities**omega + performances


def admission_probability(rank: int, batch: int, decay: float = ADMISSION_DECAY) -> float:
    """1 for a rank (0 = best of `batch` trials) in the top third, else exp(-decay * places below the top third)."""
    top = math.ceil(batch / 3)
    return 1.0 if rank < top else math.exp(-decay * (rank - top + 1))


class HandOver:
    """When the actor takes over for good: "fixed" (the paper's) at trial `trials`; "earned" once an actor
    trial from then on scores at least the mean of the assistant's recent trials, by `HANDOVER_LIMIT` x
    `trials` at the latest, the two taking turns meanwhile."""

    def __init__(self, kind: str, trials: int):
        self.kind, self.trials = kind, trials
        self.handed_over = kind == "fixed"
        self.actor_short = False  # an actor trial fell short: the assistant plays its turns

    def waiting(self, trial: int) -> bool:
        """Whether, from trial `trials` on, the actor still waits for the hand-over (taking turns)."""
        return self.actor_short and not self.handed_over and trial < HANDOVER_LIMIT * self.trials

    def judge(self, trial: int, accuracy: float, by_assistant: bool, recent: Sequence[float]) -> None:
        """Take note of an actor trial's `accuracy` against the assistant's `recent` ones."""
        if self.handed_over or trial < self.trials or by_assistant:
            return
        if accuracy >= np.mean(recent):
            self.handed_over = True
        else:
            self.actor_short = True


class Incumbent:
    """The mean policy of the target's `k` best trials so far, which the assistant plays around once it has
    explored its records (k = 0: never)."""

    def __init__(self, k: int):
        self.k = k
        self.best: list[tuple[float, np.ndarray]] = []  # (accuracy, fractions), best first, ties by arrival

    def note(self, fractions: np.ndarray, accuracy: float) -> None:
        if self.k:
            self.best = sorted([*self.best, (accuracy, np.array(fractions, dtype=np.float64))],
                               key=lambda b: -b[0])[:self.k]

    def centre(self, step: int) -> float | None:
        """Unit `step`'s fraction at the centre, or None before any trial is noted."""
        return float(np.mean([fractions[step] for _, fractions in self.best])) if self.best else None


class ShrinkRace:
    """Two readings of the records raced in the explore half: as they are, and shrunk toward each record's own
    policy mean, keeping `shrink` of every unit's deviation from it (1: no race). The first `race` exploring
    trials alternate, from the first, between the two; the one with the higher mean accuracy plays the rest.
    Another network's records, mapped unit by unit, carry its structure, which may suit the target or mislead
    it: a few trials tell which."""

    def __init__(self, shrink: float, race: int):
        self.shrink, self.race = shrink, race
        self.scores: dict[bool, list[float]] = {False: [], True: []}  # accuracies by arm: shrunk or not
        self.arm: bool | None = None  # the arm of the trial being played

    def shrinks(self, trial: int) -> bool:
        """Whether exploring trial `trial` plays the shrunk records; its arm is noted for `note`."""
        if self.shrink >= 1:
            self.arm = False
        elif trial < self.race:
            self.arm = trial % 2 == 1
        else:
            self.arm = self._shrunk_leads()
        return self.arm

    def shrunk_won(self, trial: int) -> bool:
        """Whether the race is over by trial `trial` and the shrunk reading won it."""
        return self.shrink < 1 and trial >= self.race and self._shrunk_leads()

    def _shrunk_leads(self) -> bool:
        return bool(np.mean(self.scores[True]) > np.mean(self.scores[False]))

    def note(self, accuracy: float) -> None:
        """Take note of the accuracy of the trial played last, if it read the records."""
        if self.arm is not None:
            self.scores[self.arm].append(accuracy)
            self.arm = None


class Assistant:
    """Chooses actions from past records for a search's first `trials` episodes, and their admission.

    :param episodes: the records, the source's trials rewritten for the target
    :param ratio: the target's p, which `random_every`'s draws centre on (needed with `random_every` alone)
    :param seed: seeds the assistant's generator (its choices, noise and admissions)
    :param settings: the assistant's settings, `ASSISTANT_SETTINGS` (checked by the search's configuration)
    """

    def __init__(self, episodes: list[Episode], *, ratio: float | None = None, seed: int | None = None,
                 **settings: Any):
        if not episodes:
            raise PruneGymError("the assistant needs past trials to act from; its source run has none")
        settings = {**ASSISTANT_SETTINGS.defaults, **settings}
        if settings["random_every"] and ratio is None:
            raise PruneGymError("assistant setting random_every needs the target ratio p to draw around")
        self.trials, self.top_n, self.batch = settings["trials"], settings["top_n"], settings["batch"]
        self.sigma, self.omega, self.noise = settings["sigma"], settings["omega"], settings["noise"]
        self.keep_until, self.random_every, self.ratio = settings["keep_until"], settings["random_every"], ratio
        self.explore_trials = self.trials // 2
        self.handover = HandOver(settings["handover"], self.trials)
        self.incumbent = Incumbent(settings["incumbent"])
        self.assisted_streak = 0  # the assistant's trials since the actor's last, for the turns
        self.states = np.concatenate([e.observations[:-1] for e in episodes]).astype(np.float64)
        self.actions = np.concatenate([e.fractions for e in episodes]).astype(np.float64)
        self.performances = np.concatenate([np.full(len(e.fractions), e.accuracy) for e in episodes])
        self.means = np.concatenate([np.full(len(e.fractions), np.mean(e.fractions)) for e in episodes])
        self.shrink_race = ShrinkRace(settings["shrink"], settings["shrink_race"])
        self.teach_shrunk = settings["teach_shrunk"]
        self.recent: deque[float] = deque(maxlen=self.batch)  # accuracies of the last assistant trials
        self.rng = np.random.default_rng(seed)

    def __setstate__(self, state: dict[str, Any]) -> None:
        # an assistant saved before the shrink race existed read its records as they are and taught the searcher
        # every trial it admitted: it resumes so
        state.setdefault("shrink_race", ShrinkRace(1.0, ASSISTANT_SETTINGS.defaults["shrink_race"]))
        state.setdefault("teach_shrunk", True)
        self.__dict__.update(state)

    def active(self, trial: int) -> bool:
        """Whether the assistant acts in trial `trial` (from 0): its first `trials`, then every other trial
        while it keeps turns or the actor waits for an earned hand-over."""
        if trial < self.trials:
            return True
        return (trial < self.keep_until or self.handover.waiting(trial)) and not self.assisted_streak

    def judge(self, trial: int, accuracy: float, by_assistant: bool) -> None:
        """Take note of trial `trial`'s outcome, for the turns and an earned hand-over."""
        self.assisted_streak = self.assisted_streak + 1 if by_assistant else 0
        self.handover.judge(trial, accuracy, by_assistant, self.recent)

    def noise_width(self, trial: int) -> float:
        """Half-width of the uniform noise in trial `trial`: `noise` at the first, falling linearly to 0 at `trials`
        (with an earned hand-over or the incumbent, to half of `noise`, where it stays)."""
        if not self.trials:
            return 0.0
        floor = 0.5 if self.handover.kind == "earned" or self.incumbent.k else 0.0
        return self.noise * max(floor, 1.0 - trial / self.trials)

    def choose(self, state: np.ndarray, trial: int) -> int:
        """The record to act from: random among the top n by M while exploring, then the best."""
        metric = selection_metric(similarity(self.states, np.asarray(state, np.float64), self.sigma),
                                  self.performances, self.omega)
        if trial >= self.explore_trials:
            return int(np.argmax(metric))
        n = min(self.top_n, len(metric))
        top = np.argpartition(-metric, n - 1)[:n]
        return int(self.rng.choice(top))

    def note(self, fractions: np.ndarray, accuracy: float) -> None:
        """Take note of a finished trial of the target, whoever played it, for the incumbent."""
        self.incumbent.note(fractions, accuracy)
        self.shrink_race.note(accuracy)

    def plays_random(self, trial: int) -> bool:
        """Whether trial `trial` is one of the explore phase's random draws around p (`random_every`)."""
        return bool(self.random_every) and trial < self.explore_trials and (trial + 1) % self.random_every == 0

    def act(self, state: np.ndarray, trial: int, step: int) -> float:
        """The kept fraction for `state`, the `step`-th unit: the chosen record's, or the incumbent's once it
        plays around it, plus decaying uniform noise, within [0, 1]; or a random fraction around p."""
        if self.plays_random(trial):
            return float(warmup_action(self.rng, self.ratio, WARMUP_SIGMA)[0, 0])
        centre = self.incumbent.centre(step) if trial >= self.explore_trials else None
        if centre is None:
            record = self.choose(state, trial)
            base = self.actions[record]
            if trial < self.explore_trials and self.shrink_race.shrinks(trial):
                base = self.means[record] + self.shrink_race.shrink * (base - self.means[record])
        else:
            base = centre
        width = self.noise_width(trial)
        return float(np.clip(base + self.rng.uniform(-width, width), 0.0, 1.0))

    def admit(self, accuracy: float) -> bool:
        """Whether an assistant trial enters the replay buffer, by its rank among the last `batch` (itself included)."""
        self.recent.append(accuracy)
        rank = sum(a > accuracy for a in self.recent)
        return bool(self.rng.random() < admission_probability(rank, len(self.recent)))

    def teaches(self, trial: int) -> bool:
        """Whether assistant trial `trial` may enter the searcher's memory at all: not once the shrunk reading has
        won the race, where `teach_shrunk` is off."""
        return self.teach_shrunk or not self.shrink_race.shrunk_won(trial)


class AssistedSearcher(Searcher):
    """`searcher`, with `assistant` choosing the actions of the trials it is active in.

    A wrapper in the manner of a Gymnasium wrapper: everything else goes to the searcher.
    """

    def __init__(self, searcher: Searcher, assistant: Assistant):
        self.searcher, self.assistant = searcher, assistant
        self._assisting = False
        self.trial = -1

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.searcher.name

    @property
    def env(self) -> gym.Env:  # type: ignore[override]
        return self.searcher.env

    def begin_trial(self, trial: int) -> str:
        self.trial = trial
        self._assisting = self.assistant.active(trial)
        if not self._assisting:
            return self.searcher.begin_trial(trial)
        return "warmup" if self.assistant.plays_random(trial) else "assistant"

    def act(self, observation: np.ndarray, step: int) -> float:
        if self._assisting:
            return self.assistant.act(observation, self.trial, step)
        return self.searcher.act(observation, step)

    def admits(self, trial: Trial) -> bool:
        by_assistant = trial.origin == "assistant"
        self.assistant.note(trial.actions, trial.accuracy)
        if by_assistant:  # the admission draw is made either way, so that the generator's sequence stays the same
            admitted = self.assistant.admit(trial.accuracy) and self.assistant.teaches(self.trial)
        else:
            admitted = self.searcher.admits(trial)
        self.assistant.judge(self.trial, trial.accuracy, by_assistant)
        return admitted

    def learn(self, trial: Trial) -> None:
        self.searcher.learn(trial)

    def weights(self) -> dict[str, Any]:
        return self.searcher.weights()

    def load_weights(self, weights: Any) -> None:
        self.searcher.load_weights(weights)

    def preload(self, episodes: Any) -> None:
        self.searcher.preload(episodes)

    def set_logger(self, logger: Any) -> None:
        self.searcher.set_logger(logger)

    def save(self, directory: Path) -> None:
        inner = Path(directory) / INNER_FOLDER
        inner.mkdir()
        self.searcher.save(inner)
        with open(Path(directory) / ASSISTANT_FILE, "wb") as f:
            pickle.dump((type(self.searcher), self.assistant, self.trial), f)

    @classmethod
    def load(cls, directory: Path, env: gym.Env) -> AssistedSearcher:
        with open(Path(directory) / ASSISTANT_FILE, "rb") as f:
            searcher_class, assistant, trial = pickle.load(f)
        wrapper = cls(searcher_class.load(Path(directory) / INNER_FOLDER, env), assistant)
        wrapper.trial = trial
        return wrapper
