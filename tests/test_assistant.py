"""Assistant learning: Eqs. 3 and 4, the record selection, the noise schedule, admission, and a real search."""

from __future__ import annotations

import math
import pickle
import re
from dataclasses import replace

import numpy as np
import pytest

from prune_gym.agents.assistant import (ASSISTANT_SETTINGS, Assistant, admission_probability, selection_metric,
                                        similarity)
from prune_gym.agents.augmentation import Episode, augmented_episodes
from prune_gym.agents.checkpoints import SearcherCheckpoints
from prune_gym.agents.config import SearchConfig
from prune_gym.agents.loop import make_env, run_search, scenario_of
from prune_gym.agents.searcher import Searcher
from prune_gym.errors import PruneGymError
from prune_gym.history import HistoryStore


def gaussian(h: float, i: float, sigma: float) -> float:
    return math.exp(-((h - i) ** 2) / (2 * sigma**2))


def test_eq3_similarity_is_a_product_of_gaussians_over_the_state_features():
    state = np.array([0.2, 0.5, 0.9])
    records = np.array([[0.2, 0.5, 0.9], [0.3, 0.5, 0.9], [0.3, 0.3, 0.7], [0.9, 0.0, 0.1]])
    expected = [math.prod(gaussian(h, i, 0.1) for h, i in zip(record, state)) for record in records]
    assert np.allclose(similarity(records, state, 0.1), expected)
    assert similarity(records, state, 0.1)[0] == 1.0  # the same state
    assert np.isclose(similarity(records, state, 0.1)[1], math.exp(-0.5))  # one feature one sigma away
    assert np.isclose(similarity(records, state, 0.2)[2], gaussian(0.3, 0.2, 0.2) * gaussian(0.3, 0.5, 0.2) ** 2)


def test_eq4_weighs_similarity_by_omega_and_adds_the_accuracy():
    s, p = np.array([1.0, 0.5, 0.1]), np.array([0.2, 0.9, 0.5])
    assert np.allclose(selection_metric(s, p, 2.0), [1.2, 1.15, 0.51])
    assert np.allclose(selection_metric(s, p, 1.0), [1.2, 1.4, 0.6])


def episode(first_state: float, fractions: list[float], accuracy: float) -> Episode:
    """Observations of one feature: the first state, then the previous kept fraction."""
    observations = np.array([[first_state], *[[f] for f in fractions]], dtype=np.float32)
    return Episode(observations, np.array(fractions, np.float32), reward=accuracy, accuracy=accuracy)


def memory() -> list[Episode]:
    # All start in state 0.0; by Eq. 4 there the best three are the 0.9, 0.8 and 0.7 trials.
    return [episode(0.0, [f, 0.5], acc) for f, acc in ((0.11, 0.9), (0.22, 0.8), (0.33, 0.7), (0.44, 0.1))]


def test_the_first_trials_pick_at_random_among_the_top_n_and_later_ones_take_the_best():
    assistant = Assistant(memory(), trials=10, top_n=3, noise=0.0, seed=0)  # the first 5 explore
    explored = {round(assistant.act(np.array([0.0]), trial=t % 5, step=0), 4) for t in range(200)}
    assert explored == {0.11, 0.22, 0.33}  # each of the top three, never the fourth
    assert {round(assistant.act(np.array([0.0]), trial=t, step=0), 4) for t in range(5, 10)} == {0.11}
    # Similarity counts: in state 0.33 the 0.7 trial's second step (record 5) wins with M = 1 + 0.7,
    # against exp(-0.11^2 / 0.02)^2 + 0.8 = 1.10 for the 0.8 trial's second step, in state 0.22.
    assert assistant.choose(np.array([0.33]), trial=9) == 5
    first = Assistant(memory(), trials=10, top_n=1, noise=0.0, seed=0)
    assert first.act(np.array([0.0]), trial=0, step=0) == pytest.approx(0.11)


def test_the_uniform_noise_decays_linearly_to_zero_when_the_actor_takes_over():
    assistant = Assistant([episode(0.0, [0.5, 0.5], 0.9)], trials=30, noise=0.2, seed=0)
    assert [assistant.noise_width(t) for t in (0, 15, 30, 40)] == pytest.approx([0.2, 0.1, 0.0, 0.0])
    assert [assistant.active(t) for t in (0, 29, 30)] == [True, True, False]
    for trial, width in ((0, 0.2), (15, 0.1)):
        deviations = np.array([assistant.act(np.array([0.0]), trial, step=0) - 0.5 for _ in range(2000)])
        assert deviations.min() >= -width and deviations.max() <= width
        assert deviations.min() < -0.9 * width and deviations.max() > 0.9 * width  # uniform over the whole width
        assert abs(deviations.mean()) < 0.05 * width


def test_an_earned_hand_over_waits_for_an_actor_trial_as_good_as_the_assistants_recent_ones():
    assistant = Assistant(memory(), trials=4, batch=4, noise=0.2, handover="earned", seed=0)
    assert [assistant.noise_width(t) for t in (0, 2, 4, 9)] == pytest.approx([0.2, 0.1, 0.1, 0.1])  # half stays
    for t, accuracy in enumerate((0.80, 0.82, 0.84, 0.86)):  # the assistant's first four: mean 0.83
        assert assistant.active(t)
        assistant.admit(accuracy)
        assistant.judge(t, accuracy, by_assistant=True)
    turns = []
    for t, accuracy in zip(range(4, 10), (0.70, 0.83, 0.82, 0.84, 0.95, 0.60)):
        turns.append(assistant.active(t))
        if turns[-1]:
            assistant.admit(accuracy)
        assistant.judge(t, accuracy, by_assistant=turns[-1])
    # the actor (0.70, short of the mean 0.83), the assistant (0.83), the actor (0.82, short of 0.8375),
    # the assistant (0.84), the actor (0.95: earned), then the actor's, however it plays
    assert turns == [False, True, False, True, False, False] and assistant.handover.handed_over
    patient = Assistant(memory(), trials=4, handover="earned", seed=0)
    for t in range(4):
        patient.admit(0.9)
    for t in range(4, 12):
        patient.judge(t, 0.1, by_assistant=patient.active(t))
    assert not patient.handover.handed_over and not patient.active(12)  # 3 x trials: the actor's, earned or not
    fixed = Assistant(memory(), trials=4, seed=0)
    fixed.judge(4, 0.0, by_assistant=False)
    assert not fixed.active(4) and not fixed.active(5)  # the paper's: from trial `trials` on, the actor's


def test_with_incumbent_the_assistant_plays_around_the_targets_best_trials_after_exploring():
    assistant = Assistant(memory(), trials=4, top_n=1, noise=0.2, incumbent=2, seed=0)  # the first 2 explore
    assert [assistant.noise_width(t) for t in (0, 5, 9)] == pytest.approx([0.2, 0.1, 0.1])  # half stays
    for fractions, accuracy in (([0.6, 0.4], 0.70), ([0.2, 0.2], 0.50), ([0.4, 0.2], 0.60)):
        assistant.note(np.array(fractions), accuracy)
    assert abs(assistant.act(np.array([0.0]), trial=1, step=0) - 0.11) <= 0.2  # exploring: the records
    for step, centre in enumerate((0.5, 0.3)):  # the mean of the best two, 0.70 and 0.60
        fractions = np.array([assistant.act(np.array([0.0]), trial=5, step=step) for _ in range(500)])
        assert np.all(np.abs(fractions - centre) <= 0.1) and fractions.std() > 0.03  # around it, never on it
    assistant.note(np.array([0.9, 0.1]), 0.75)  # any searcher's better trial joins the best
    assert abs(assistant.act(np.array([0.0]), trial=6, step=0) - 0.75) <= 0.1
    plain = Assistant(memory(), trials=4, top_n=1, noise=0.0, seed=0)
    plain.note(np.array([0.6, 0.4]), 0.99)
    assert plain.act(np.array([0.0]), trial=5, step=0) == pytest.approx(0.11)  # off: the best record
    ever = Assistant(memory(), trials=0, incumbent=1, noise=0.0, seed=0)
    for fraction, accuracy in ((0.9, 0.95), (0.5, 0.70), (0.3, 0.60)):  # a lucky first trial, then two plain ones
        ever.note(np.array([fraction, fraction]), accuracy)
    assert ever.act(np.array([0.0]), trial=5, step=0) == pytest.approx(0.9)  # the best ever


def test_kept_turns_alternate_with_the_actor_after_the_hand_over_until_keep_until():
    assistant = Assistant(memory(), trials=4, incumbent=2, keep_until=10, noise=0.02, seed=0)
    turns = []
    for t in range(14):
        turns.append(assistant.active(t))
        assistant.note(np.array([0.4, 0.6]), 0.8)
        assistant.judge(t, 0.8, by_assistant=turns[-1])
    # the first four, then turns (the actor first) until trial 10, then the actor's (the fixed hand-over)
    assert turns == [True] * 4 + [False, True] * 3 + [False] * 4
    fractions = np.array([assistant.act(np.array([0.0]), trial=5, step=0) for _ in range(200)])
    assert np.all(np.abs(fractions - 0.4) <= 0.01) and fractions.std() > 0.003  # half the noise wide


def test_waiting_for_an_earned_hand_over_the_assistant_and_the_actor_take_turns():
    def turns_of(**settings: int) -> list[bool]:
        assistant = Assistant(memory(), trials=4, handover="earned", seed=0, **settings)
        played = []
        for t in range(16):
            played.append(assistant.active(t))
            if played[-1]:
                assistant.admit(0.9)
            assistant.judge(t, 0.9 if played[-1] else 0.1, by_assistant=played[-1])  # the actor never earns it
        return played
    # waiting for an earned hand-over until 3 x trials, one for one, then the actor's (or kept turns to 14)
    assert turns_of() == [True] * 4 + [False, True] * 4 + [False] * 4
    assert turns_of(keep_until=14) == [True] * 4 + [False, True] * 5 + [False] * 2


def test_random_every_mixes_the_records_with_random_fractions_around_p():
    assistant = Assistant(memory(), trials=12, top_n=1, noise=0.0, random_every=2, ratio=0.8, seed=0)
    assert [assistant.plays_random(t) for t in range(8)] == [False, True] * 3 + [False, False]
    assert assistant.act(np.array([0.0]), trial=0, step=0) == pytest.approx(0.11)  # the best record, no noise
    drawn = np.array([assistant.act(np.array([0.0]), trial=1, step=0) for _ in range(500)])
    assert 0.75 < drawn.mean() < 0.85 and drawn.std() > 0.05 and drawn.max() <= 1.0  # around p = 0.8
    with pytest.raises(PruneGymError, match="needs the target ratio"):
        Assistant(memory(), random_every=2)
    third = Assistant(memory(), trials=18, random_every=3, ratio=0.5)
    assert [t for t in range(12) if third.plays_random(t)] == [2, 5, 8]  # every third, while exploring


def test_the_shrink_race_alternates_the_records_as_they_are_and_shrunk_then_keeps_the_better():
    # The best record's policy is [0.11, 0.5], mean 0.305: shrunk by half, its first unit keeps 0.2075.
    shrunk = 0.305 + 0.5 * (0.11 - 0.305)

    def played(assistant: Assistant, trial: int, accuracy: float) -> float:
        fraction = assistant.act(np.array([0.0]), trial=trial, step=0)
        assistant.note(np.array([fraction, 0.5]), accuracy)
        return round(fraction, 4)

    for shrunk_scores, winner in (((0.9, 0.8), shrunk), ((0.5, 0.6), 0.11)):
        assistant = Assistant(memory(), trials=12, top_n=1, noise=0.0, shrink=0.5, shrink_race=4, seed=0)
        race = [played(assistant, t, score) for t, score in enumerate((0.7, shrunk_scores[0], 0.7, shrunk_scores[1]))]
        assert race == [0.11, round(shrunk, 4)] * 2  # alternating, from the records as they are
        assert {played(assistant, t, 0.7) for t in range(4, 6)} == {round(winner, 4)}  # the better mean plays on
        assert played(assistant, 6, 0.7) == 0.11  # after exploring: the best record, as it is
    plain = Assistant(memory(), trials=12, top_n=1, noise=0.0, seed=0)  # shrink 1: no race
    assert {played(plain, t, 0.9) for t in range(6)} == {0.11}


def test_with_teach_shrunk_off_the_searcher_learns_nothing_the_winning_shrunk_reading_plays():
    def raced(shrunk_score: float, **settings: bool) -> Assistant:
        assistant = Assistant(memory(), trials=12, top_n=1, noise=0.0, shrink=0.5, shrink_race=4, seed=0, **settings)
        for trial in range(4):
            assistant.act(np.array([0.0]), trial=trial, step=0)
            assistant.note(np.array([0.2, 0.5]), shrunk_score if trial % 2 else 0.7)
        return assistant

    untaught = raced(0.9, teach_shrunk=False)
    assert [untaught.teaches(t) for t in range(3, 7)] == [True, False, False, False]  # the race's own trials taught
    assert all(raced(0.9).teaches(t) for t in range(12))  # the default: every trial may be admitted
    assert all(raced(0.5, teach_shrunk=False).teaches(t) for t in range(12))  # the records as they are won


def test_an_assistant_saved_before_the_shrink_race_resumes_reading_its_records_as_they_are():
    before_the_race = Assistant(memory(), trials=12, top_n=1, noise=0.0, seed=0)
    del before_the_race.shrink_race, before_the_race.means  # what an interrupted run's checkpoint of then holds
    resumed = pickle.loads(pickle.dumps(before_the_race))
    fractions = set()
    for trial in range(6):
        fractions.add(round(resumed.act(np.array([0.0]), trial=trial, step=0), 4))
        resumed.note(np.array([0.11, 0.5]), 0.9)
    assert fractions == {0.11}


def test_admission_always_takes_the_top_third_and_the_rest_with_exponentially_falling_odds():
    assert [admission_probability(r, 9, 0.5) for r in (0, 2)] == [1.0, 1.0]
    assert [admission_probability(r, 9, 0.5) for r in (3, 4, 8)] == pytest.approx(np.exp([-0.5, -1.0, -3.0]))
    assert admission_probability(3, 10, 1.0) == 1.0  # the top third of 10 is 4 trials

    assistant = Assistant(memory(), batch=9, seed=0)
    assert assistant.admit(0.5)  # alone in its batch, so the best
    for accuracy in (0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9):
        assistant.admit(accuracy)
    admitted = {}
    for rank, accuracy in ((0, 0.95), (4, 0.55), (8, 0.05)):  # the batch holds the last 9: a new trial pushes one out
        outcomes = []
        for _ in range(4000):
            batch = list(assistant.recent)
            outcomes.append(assistant.admit(accuracy))
            assistant.recent.clear()
            assistant.recent.extend(batch)
        admitted[rank] = np.mean(outcomes)
    assert admitted[0] == 1.0
    assert admitted[4] == pytest.approx(math.exp(-1.0), abs=0.03)  # 0.55 ranks 4th of 0.2..0.9 and itself
    assert admitted[8] == pytest.approx(math.exp(-3.0), abs=0.015)
    outcomes = [[Assistant(memory(), seed=seed).admit(a) for a in (0.5, 0.1, 0.2, 0.3, 0.05, 0.04, 0.03)]
                for seed in (7, 7, 8)]
    assert outcomes[0] == outcomes[1]  # the seeded generator decides


def test_an_empty_memory_is_refused():
    with pytest.raises(PruneGymError, match="past trials"):
        Assistant([])


@pytest.mark.parametrize("settings, why", [
    ({"handover": "never"}, "assistant setting handover is one of fixed, earned, got 'never'"),
    ({"incumbent": -1}, "assistant setting incumbent takes 0 or more, got -1"),
    ({"shrink_race": 1}, "assistant setting shrink_race takes 2 or more, got 1"),
    ({"sigma": 0.0}, "assistant setting sigma takes 1e-09 or more"),
    ({"trials": 2.5}, "assistant setting trials takes an integer, got 2.5"),
    ({"incumbent_window": 3}, "the assistant has no setting 'incumbent_window'; its settings: batch, handover"),
])
def test_the_assistants_settings_are_checked_against_its_schema(settings, why):
    with pytest.raises(PruneGymError, match=re.escape(why)):
        ASSISTANT_SETTINGS.check(settings)
    assert ASSISTANT_SETTINGS.parse("keep_until=300") == ("keep_until", 300)
    assert ASSISTANT_SETTINGS.parse("handover=earned") == ("handover", "earned")


def test_an_assistant_search_records_what_the_assistant_chose_and_what_it_admitted(tiny_checkpoint, fashion_root,
                                                                                   tmp_path):
    history = tmp_path / "history.h5"
    base = SearchConfig(ratio=0.5, trials=4, warmup=2, seed=0, device="cpu", checkpoint=str(tiny_checkpoint),
                        data_root=str(fashion_root), env_kwargs={"calibration_images": 100},
                        agent_kwargs={"invariant_actor": True})
    source = run_search(base, history, progress=False).run_id
    config = SearchConfig(ratio=0.3, trials=7, method="assistant", source=source, seed=3, device="cpu",
                          checkpoint=str(tiny_checkpoint), data_root=str(fashion_root),
                          env_kwargs={"calibration_images": 100},
                          assistant={"trials": 5, "batch": 3, "incumbent": 2})
    env = make_env(config)
    result = run_search(config, history, progress=False, env=env)
    with HistoryStore(history) as store:
        run = store.read_run(result.run_id)
        source_run = store.read_run(source)
    assert list(run.origins) == ["assistant"] * 5 + ["actor"] * 2
    assert run.info.settings["assistant"] == {"trials": 5, "batch": 3, "incumbent": 2} and run.info.sources == [source]
    assert run.admitted[0] and all(run.admitted[5:])  # the first is the best of its batch; the actor's all enter
    assert np.all(run.macs_ratios <= 0.3)
    # Every trial starts in the same state, so S = 1 there and the first unit keeps one of the three most accurate
    # source trials' first fractions (rewritten for p = 0.3), give or take the noise and a channel's rounding.
    records = augmented_episodes(source_run, env.unwrapped, scenario_of(env), source_run.n_trials)
    top3 = [e.fractions[0] for e in sorted(records, key=lambda e: e.accuracy)[-3:]]
    channels = env.unwrapped.units[0].channels
    assert min(abs(run.actions[0, 0] - f) for f in top3) <= 0.1 + 0.5 / channels + 1e-6

    from prune_gym.agents.assistant import AssistedSearcher
    saved, trials, _ = SearcherCheckpoints(history, result.run_id).load(AssistedSearcher, env)
    assert trials == 7 and len(saved.assistant.recent) == 3  # kept with the searcher, for resume
    best = sorted(range(7), key=lambda t: -run.accuracies[t])[:2]  # the incumbent: every searcher's trials count
    assert [a for a, _ in saved.assistant.incumbent.best] == pytest.approx(run.accuracies[best])
    assert np.allclose(saved.assistant.incumbent.best[0][1], run.actions[best[0]])
    agent = saved.searcher.agent
    preloaded = min(source_run.n_trials, agent.buffer_episodes)
    assert agent.replay_buffer.size() == (preloaded + int(run.admitted.sum())) * len(env.unwrapped.units)

    # The assistant also serves the baseline (no weights taken) and vanilla transfer; its trials come first.
    for method, warmup, origins in (("baseline", 3, ["assistant"] * 2 + ["warmup", "actor"]),
                                    ("vanilla", None, ["assistant"] * 2 + ["actor"] * 2)):
        other = replace(config, method=method, trials=4, warmup=warmup, assistant={"trials": 2},
                        agent_kwargs={"invariant_actor": True})
        with HistoryStore(history) as store:
            run = store.read_run(run_search(other, history, progress=False, env=env).run_id)
        assert list(run.origins) == origins and run.info.method == method and run.info.sources == [source]
