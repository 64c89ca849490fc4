"""The benchmark study: the job matrix, a real quick study run twice, and its report."""

from __future__ import annotations

import csv
import importlib
import sys
from dataclasses import replace

import numpy as np
import pytest

from prune_gym.agents.loop import search_to_completion
from prune_gym.agents.methods import PAPER_METHODS
from prune_gym.agents.presets import Preset
from prune_gym.agents.searchers import SEARCHERS
from prune_gym.benchmarks.data_export import (committed_digests, committed_jobs, differing_reruns, export_study,
                                              read_csv_gz, settings_text)
from prune_gym.benchmarks.report import write_report
from prune_gym.benchmarks.study import (CHECKPOINTS, LEAGUE_SEARCHERS, SOURCE_RUN, STUDIES, Transfer, adopt,
                                        history_of, job_status, run_study, study_checkpoints)
from prune_gym.checkpoints import checkpoint_digest
from prune_gym.errors import PruneGymError
from prune_gym.history import HistoryStore


def test_the_core_study_runs_each_search_once_and_every_source_before_its_transfers():
    jobs = STUDIES["core"].jobs()
    # 5 baselines x 3 seeds; the invariant sources at 0.5 and 0.3 (the plain ones are baseline seed 0);
    # 4 transfers x 3 methods x 3 seeds.
    assert len(jobs) == 15 + 2 + 36 and len({job.key for job in jobs}) == len(jobs)
    position = {job: i for i, job in enumerate(jobs)}
    assert all(position[job.source] < position[job] for job in jobs if job.source)
    from_05 = [job for job in jobs if job.source and job.source.ratio == 0.5 and job.model == "resnet56"]
    assert {(job.method, job.source.invariant_actor) for job in from_05} == {
        ("vanilla", False), ("augmented", True), ("assistant", True)}
    resnet20 = STUDIES["core"].restricted(["resnet20"]).jobs()
    assert {job.model for job in resnet20} == {"resnet20"} and len(resnet20) == 9 + 2 + 18
    # A cross-model part keeps the ResNet-20 source runs it starts from, and nothing else of ResNet-20.
    mobilenet = STUDIES["core"].restricted(["mobilenet_v1"]).jobs()
    assert len(mobilenet) == 3 + 2 + 9
    assert {job.key for job in mobilenet if job.model == "resnet20"} == {
        "resnet20-p0.5-baseline-seed0", "resnet20-p0.5-baseline-invariant-seed0"}
    # One ratio of a model: the transfers into it alone.
    into_02 = STUDIES["transfer"].restricted(["resnet20:0.2"])
    assert {(t.source_ratio, t.target_ratio) for t in into_02.transfers} == {(0.5, 0.2), (0.4, 0.2), (0.3, 0.2)}
    # ... and from one source's.
    from_05 = STUDIES["transfer"].from_sources(["resnet20:0.5"])
    assert {(t.source_ratio, t.target_ratio) for t in from_05.transfers} == {(0.5, 0.2), (0.5, 0.3)}
    assert from_05.baselines == STUDIES["transfer"].baselines
    # One method of it: its transfers and the one source they need; an unknown name is refused.
    assistant = STUDIES["core"].with_methods(["assistant"]).jobs()
    assert {job.method for job in assistant} == {"baseline", "assistant"} and len(assistant) == 15 + 2 + 12
    assert not any(job.source.invariant_actor is False for job in assistant if job.source)
    with pytest.raises(PruneGymError, match="not a method of this study: ppo"):
        STUDIES["core"].with_methods(["assistant", "ppo"])
    # More seeds for a row: the same cells on the new seeds, the transfers still from the source seed.
    more = STUDIES["transfer"].with_methods(["history"]).restricted(["resnet20:0.2"]).with_seeds([5, 6, 5]).jobs()
    assert {job.seed for job in more if job.method == "history"} == {5, 6}
    assert {job.source.seed for job in more if job.source} == {0}
    assert "resnet20-p0.2-history-seed6-from-resnet20-p0.3-baseline-invariant-seed0" in {job.key for job in more}
    for bad in ([], [-1]):
        with pytest.raises(PruneGymError, match="seeds must be"):
            STUDIES["league"].with_seeds(bad)


def test_a_study_crosses_searchers_with_the_methods_each_can_run(tiny_checkpoint, fashion_root, tmp_path):
    core = STUDIES["core"]
    league = replace(core, agents=("amc-ddpg", "tpe", "ppo"))
    jobs = league.jobs()
    assert set(core.jobs()) <= set(jobs) and len({job.key for job in jobs}) == len(jobs)  # the core's keys stay
    methods = {agent: {job.method for job in jobs if job.agent == agent} for agent in league.agents}
    assert methods == {"amc-ddpg": {"baseline", *PAPER_METHODS}, "tpe": {"baseline", "augmented", "assistant"},
                       "ppo": {"baseline", "vanilla"}}
    # A black-box searcher starts from the default agent's runs, PPO from its own (weights).
    assert {job.source.agent for job in jobs if job.source and job.agent == "tpe"} == {"amc-ddpg"}
    assert {job.source.agent for job in jobs if job.source and job.agent == "ppo"} == {"ppo"}
    assert "resnet20-p0.2-tpe-augmented-seed1-from-resnet20-p0.5-baseline-invariant-seed0" in {j.key for j in jobs}

    league = STUDIES["league"].jobs()
    assert len(league) == len(LEAGUE_SEARCHERS) * 2 * 5 and {job.method for job in league} == {"baseline"}
    assert [job.agent for job in league[:len(LEAGUE_SEARCHERS)]] == list(LEAGUE_SEARCHERS)  # first seeds first
    assert set(LEAGUE_SEARCHERS) <= set(SEARCHERS)

    quick = replace(STUDIES["quick"], agents=("random",), seeds=(0,), methods=("augmented",))
    outcome = run_study(quick, tmp_path, jobs=1, progress=False, poll_seconds=0.5, backend="processes",
                        device="cpu", checkpoint=str(tiny_checkpoint), data_root=str(fashion_root),
                        env_kwargs={"calibration_images": 100})
    assert set(outcome.outcomes.values()) == {"done"} and len(outcome.outcomes) == 3  # baseline, source, transfer
    for job in quick.jobs():
        with HistoryStore(history_of(tmp_path, job)) as store:
            assert store.read_run(SOURCE_RUN).info.agent == job.agent


def test_the_extended_study_adds_to_the_core_without_repeating_it():
    core, extended = STUDIES["core"].jobs(), STUDIES["extended"].jobs()
    # 7 baselines (ResNet-20 at 0.2-0.5, the three other models at 0.3) x 3 seeds; invariant sources at
    # 0.2, 0.3, 0.4 and 0.5; 12 transfers x 3 methods x 3 seeds.
    assert len(extended) == 21 + 4 + 108 and len({job.key for job in extended}) == len(extended)
    assert set(core) <= set(extended)
    position = {job: i for i, job in enumerate(extended)}
    assert all(position[job.source] < position[job] for job in extended if job.source)
    into_03 = {(job.source.model, job.source.ratio, job.model) for job in extended
               if job.source and job.ratio == 0.3}
    assert {(ratio, model) for _, ratio, model in into_03 if model == "resnet20"} == {
        (0.2, "resnet20"), (0.4, "resnet20"), (0.5, "resnet20")}
    assert {(ratio, model) for _, ratio, model in into_03 if model != "resnet20"} == {
        (ratio, model) for ratio in (0.3, 0.5) for model in ("resnet56", "mobilenet_v1", "resnet18")}


def test_a_quick_study_runs_every_method_skips_what_is_done_and_reports(tiny_checkpoint, retrained_checkpoint,
                                                                       fashion_root, tmp_path):
    study = STUDIES["quick"]
    settings = {"device": "cpu", "checkpoint": str(tiny_checkpoint), "data_root": str(fashion_root),
                "env_kwargs": {"calibration_images": 100}}
    first = run_study(study, tmp_path, jobs=2, progress=False, poll_seconds=0.5, backend="processes", **settings)
    assert first.outcomes == {job.key: "done" for job in study.jobs()} and len(first.outcomes) == 10
    for job in study.jobs():
        with HistoryStore(history_of(tmp_path, job)) as store:
            run = store.read_run(SOURCE_RUN)
        assert run.info.status == "finished" and run.n_trials == study.trials and run.info.method == job.method
        assert run.info.sources == ([SOURCE_RUN] if job.source else [])
    again = run_study(study, tmp_path, jobs=2, progress=False, poll_seconds=0.5, backend="processes", **settings)
    assert set(again.outcomes.values()) == {"skipped"}

    # Adopting runs from other files: a transfer only together with its source, in the same file.
    elsewhere = tmp_path / "elsewhere"
    adopted = adopt(study, elsewhere, sorted((tmp_path / "runs").glob("*.h5")))
    assert sorted(adopted) == sorted(job.key for job in study.jobs() if job.source is None)
    assert job_status(history_of(elsewhere, study.jobs()[0])) == ("finished", study.trials)

    # The committed data: every trial (with the test accuracy of each new best-so-far) and every run's best
    # policy, scored again from the same cache, in the same bytes each time.
    data = tmp_path / "data"
    trials_path, policies_path, n_runs = export_study("quick", study, tmp_path, data=data, env_settings=settings)
    trials, policies = read_csv_gz(trials_path), read_csv_gz(policies_path)
    assert n_runs == 10 and len(trials) == 10 * study.trials and len(policies) == 10
    assert {row["device_kind"] for row in trials} == {"cpu"} and {row["agent"] for row in trials} == {"amc-ddpg"}
    assert {row["agent_settings"] for row in trials} == {"-", "invariant_actor=True"}
    for policy in policies:
        run = [row for row in trials if row["job"] == policy["job"]]
        best = np.maximum.accumulate([float(row["accuracy"]) for row in run])
        assert [row["test_accuracy"] != "" for row in run] == [True, *(best[1:] > best[:-1])]
        assert float(run[int(policy["best_trial"])]["test_accuracy"]) == pytest.approx(
            float(policy["test_accuracy"]), abs=1e-6)  # the best trial, played again, is the run's best policy
    by_method = {row["method"]: row for row in policies if row["source"] != "-"}
    assert by_method["vanilla"]["source"] == "resnet20 0.5" and len(by_method["vanilla"]["policy"].split()) == 9
    first_bytes = trials_path.read_bytes()
    export_study("quick", study, tmp_path, data=data, env_settings=settings)
    assert trials_path.read_bytes() == first_bytes

    # On a new machine holding another run of a committed job (a source made again, say): the export keeps
    # the committed one, and a study there skips every committed job.
    job = study.jobs()[0]
    partial = tmp_path / "partial"
    config = job.config(study.dataset, **settings)
    search_to_completion(replace(config, seed=5), history_of(partial, job), progress=False)
    export_study("quick", study, partial, data=data, env_settings=settings)
    assert trials_path.read_bytes() == first_bytes
    with HistoryStore(history_of(partial, job)) as store:
        rerun = store.read_run(SOURCE_RUN).accuracies
    committed_run = [float(row["accuracy"]) for row in trials if row["job"] == job.key]
    first = next(t for t, (a, b) in enumerate(zip(committed_run, rerun)) if abs(a - b) > 1e-6)
    assert differing_reruns("quick", study, partial, data) == [
        f"{job.key}: the run in {partial} parts from the committed one at trial {first + 1} (best "
        f"{100 * max(rerun):.2f}% against {100 * max(committed_run):.2f}%); the data keep the committed run"]
    assert differing_reruns("quick", study, tmp_path, data) == []
    committed = committed_jobs("quick", data)
    assert committed == {job.key: study.trials for job in study.jobs()}
    assert set(run_study(study, tmp_path / "new", committed=committed, progress=False,
                         backend="processes", **settings).outcomes.values()) == {"skipped"}
    fewer = run_study(replace(study, trials=3), tmp_path / "new", committed=committed, progress=False,
                      backend="processes", **settings).outcomes
    assert fewer[job.key] == "failed: the committed data holds a run of 4 trials, the study asks for 3"

    # Pretraining on another machine gives other weights: a study on them is refused before it starts, and
    # their runs are never exported beside the committed ones.
    digests = committed_digests("quick", data)
    assert digests == {"resnet20": checkpoint_digest(tiny_checkpoint)}
    elsewhere_settings = {**settings, "checkpoint": str(retrained_checkpoint)}
    with pytest.raises(PruneGymError, match="the committed data pruned resnet20 weights"):
        run_study(study, tmp_path / "retrained", committed=committed, committed_digests=digests, progress=False,
                  backend="processes", **elsewhere_settings)
    assert not (tmp_path / "retrained").exists()
    more = replace(study, seeds=(7,), baselines=(("resnet20", 0.3),), transfers=())  # a job the data lacks
    (more_job,) = more.jobs()
    search_to_completion(more_job.config(study.dataset, **elsewhere_settings),
                         history_of(tmp_path / "retrained", more_job), progress=False)
    with pytest.raises(PruneGymError, match="one study prunes one network per model"):
        export_study("quick", more, tmp_path / "retrained", data=data, env_settings=elsewhere_settings)
    assert trials_path.read_bytes() == first_bytes

    # The report, from the committed data alone: the baseline and each method at the target.
    markdown = write_report("quick", tmp_path / "report", data)
    with (tmp_path / "report" / "results.csv").open() as f:
        rows = [row for row in csv.DictReader(f) if row["scenario"] == "resnet20 0.3"]
    assert [row["method"] for row in rows] == ["baseline", *PAPER_METHODS]
    assert all(row["seeds"] == "2" and row["trials"] == str(study.trials) for row in rows)
    assert float(rows[0]["speed_up"]) == 1.0 and rows[0]["guard"] == "True"
    assert "### resnet20 0.3" in markdown and "### resnet20 0.5" in markdown
    assert (tmp_path / "report" / "resnet20-0.3.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_study_prunes_the_committed_weights_of_each_model(tiny_checkpoint, tmp_path):
    league = STUDIES["league"]
    committed = CHECKPOINTS / "resnet20_fashion-mnist.pt"
    assert study_checkpoints(league) == {"resnet20": str(committed)}  # committed: nothing to pretrain
    assert committed_digests("league") == {"resnet20": checkpoint_digest(committed)}  # the network the data pruned
    assert league.jobs()[0].config(league.dataset, "cpu", None, None, {}).checkpoint == str(committed)
    assert study_checkpoints(league, checkpoint=str(tiny_checkpoint)) == {"resnet20": str(tiny_checkpoint)}
    (tmp_path / "resnet20_fashion-mnist.pt").write_bytes(tiny_checkpoint.read_bytes())
    assert study_checkpoints(league, checkpoints=tmp_path) == {"resnet20": str(tmp_path / "resnet20_fashion-mnist.pt")}
    with pytest.raises(PruneGymError, match="one checkpoint cannot serve the study's 3 models"):
        study_checkpoints(STUDIES["core"], checkpoint=str(tiny_checkpoint))


def test_a_failed_source_keeps_only_its_own_transfers_from_starting(tiny_checkpoint, fashion_root, tmp_path):
    study = replace(STUDIES["quick"], seeds=(0,), trials=2)
    settings = {"device": "cpu", "checkpoint": str(tiny_checkpoint), "data_root": str(fashion_root),
                "env_kwargs": {"calibration_images": 100}}
    broken = next(job for job in study.jobs() if job.invariant_actor)  # the source of augmented and assistant
    config = broken.config("fashion-mnist", settings["device"], settings["checkpoint"], settings["data_root"],
                           settings["env_kwargs"])
    search_to_completion(replace(config, trials=1), history_of(tmp_path, broken), progress=False)

    outcomes = run_study(study, tmp_path, jobs=2, progress=False, poll_seconds=0.2, backend="processes",
                         **settings).outcomes
    assert outcomes.pop(broken.key).startswith(f"failed: {history_of(tmp_path, broken)} holds a finished run of 1")
    for job in study.jobs():
        if job.source == broken:
            assert outcomes[job.key] == f"not started: its source {broken.key} failed"
            assert job_status(history_of(tmp_path, job)) == ("new", 0)
        elif job != broken:
            assert outcomes[job.key] == "done"


def test_a_studys_env_options_reach_its_searches_and_keep_other_runs_out(tiny_checkpoint, fashion_root, tmp_path):
    """The streams study prunes residual streams too; its runs are adopted into no study without them."""
    streams = replace(STUDIES["streams"], baselines=(("resnet20", 0.3),), agents=("random",), seeds=(0,), trials=2)
    settings = {"device": "cpu", "checkpoint": str(tiny_checkpoint), "data_root": str(fashion_root),
                "env_kwargs": {"calibration_images": 100}}
    assert run_study(streams, tmp_path, progress=False, poll_seconds=0.2, backend="processes", **settings).outcomes == {
        "resnet20-p0.3-random-baseline-seed0": "done"}
    (job,) = streams.jobs()
    with HistoryStore(history_of(tmp_path, job)) as store:
        info = store.read_run(SOURCE_RUN).info
    assert info.settings["env_kwargs"] == {"residual_streams": True, "calibration_images": 100}
    assert info.scenario.unit_names[0] == "conv1" and len(info.scenario.unit_names) == 10  # the stream first
    files = [history_of(tmp_path, job)]
    plain = replace(streams, env_options=())
    assert adopt(plain, tmp_path / "plain", files) == []
    assert adopt(streams, tmp_path / "again", files) == [job.key]
    outcome = run_study(plain, tmp_path, progress=False, poll_seconds=0.2, backend="processes",
                        **settings).outcomes[job.key]
    assert outcome.startswith("failed: ") and "env options {'residual_streams': True}, the study asks for {}" in outcome


def test_presets_run_their_settings_under_names_of_their_own(tiny_checkpoint, fashion_root, tmp_path):
    """A study's variant, a preset left unregistered, is a job of its own, its settings in its run and in the
    data's agent_settings column, and a run of another variant is never taken for it."""
    budget = Preset("assistant-budget-rescale", "assistant", rescale="budget", assistant={"trials": 1})
    floor = Preset("augmented-floor", "augmented", agent={"sigma_min": 0.2, "rebase_preloaded": True}, warmup=1)
    probes = replace(STUDIES["history-probes"], transfers=(Transfer("resnet20", 0.5, "resnet20", 0.3),), seeds=(0,),
                     trials=2, methods=(budget, floor))
    jobs = {job.key: job for job in probes.jobs()}
    assert set(jobs) == {"resnet20-p0.3-baseline-seed0", "resnet20-p0.5-baseline-invariant-seed0",
                         "resnet20-p0.3-assistant-budget-rescale-seed0-from-resnet20-p0.5-baseline-invariant-seed0",
                         "resnet20-p0.3-augmented-floor-seed0-from-resnet20-p0.5-baseline-invariant-seed0"}
    outcome = run_study(probes, tmp_path, jobs=2, progress=False, poll_seconds=0.2, backend="processes", device="cpu",
                        checkpoint=str(tiny_checkpoint), data_root=str(fashion_root),
                        env_kwargs={"calibration_images": 100})
    assert set(outcome.outcomes.values()) == {"done"}
    texts = {}
    for job in jobs.values():
        with HistoryStore(history_of(tmp_path, job)) as store:
            run = store.read_run(SOURCE_RUN)
        texts[job.preset.name if job.preset else job.key] = settings_text(job, run.info.settings)
        if job.preset is floor:
            assert list(run.origins) == ["warmup", "actor"]  # one warm-up trial, then the actor
    assert texts["assistant-budget-rescale"] == "invariant_actor=True assistant.trials=1 rescale=budget"
    assert texts["augmented-floor"] == "invariant_actor=True rebase_preloaded=True sigma_min=0.2 warmup=1"
    assert texts["resnet20-p0.3-baseline-seed0"] == "-"
    other = replace(probes, methods=(replace(budget, rescale="eq2"), floor))  # the same name, other settings
    outcomes = run_study(other, tmp_path, progress=False, poll_seconds=0.2, backend="processes", device="cpu",
                         checkpoint=str(tiny_checkpoint), data_root=str(fashion_root)).outcomes
    changed = outcomes.pop(next(key for key in outcomes if budget.name in key))
    assert changed.startswith("failed: ") and "other settings" in changed
    assert set(outcomes.values()) == {"skipped"}


@pytest.mark.parametrize("script", ["study", "data_export"])
def test_a_missing_data_folder_is_refused_not_taken_for_empty(script, tmp_path, monkeypatch, capsys):
    # Read as empty, it would rerun (and export over) every committed job: what a non-editable install did.
    main = importlib.import_module(f"prune_gym.benchmarks.{script}").main
    monkeypatch.setattr(sys, "argv", [script, "--study", "core", "--out", str(tmp_path / "out"),
                                      "--data", str(tmp_path / "absent")])
    with pytest.raises(SystemExit) as stop:
        main()
    assert stop.value.code == 2
    assert f"--data {tmp_path / 'absent'} is not a folder" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() and not (tmp_path / "absent").exists()
