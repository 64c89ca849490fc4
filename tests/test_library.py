"""The history library that ships with prune-gym: unpacked and verified, read as a history, refused when
damaged, and drawn on by the default search (the user's own files first; `--from-scratch` is in
test_search_cli's killed searches)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from prune_gym.benchmarks.study import committed_checkpoint
from prune_gym.checkpoints import checkpoint_digest
from prune_gym.errors import CheckpointError
from prune_gym.history import HistoryError, HistoryStore
from prune_gym.history.library import ARCHIVE, MANIFEST, library_path, manifest
from prune_gym.history.plot import learning_curves_figure
from prune_gym.pretrain import checkpoint_path, default_checkpoint, shipped_checkpoint


def test_the_shipped_library_unpacks_once_verified_and_reads_as_a_history(tmp_path):
    path = library_path(cache=tmp_path)
    with HistoryStore(path) as store:
        infos = store.find_runs()
        best = store.read_run(infos[0].run_id)
    about = manifest()
    assert len(infos) == about["runs"] > 100 and sum(i.n_trials for i in infos) == about["trials"]
    assert {i.status for i in infos} == {"finished"}
    models = {i.scenario.model for i in infos}
    digests = {m: checkpoint_digest(committed_checkpoint(m, "fashion-mnist")) for m in models}
    assert all(i.scenario.checkpoint_digest == digests[i.scenario.model] for i in infos)  # the weights that ship
    assert {"resnet20", "resnet56", "mobilenet_v1"} <= set(digests)
    assert str(best.best_trial()) in best.info.notes["test_accuracy"]  # the best trial was scored on the test split

    unpacked = path.stat().st_mtime_ns
    assert library_path(cache=tmp_path) == path and path.stat().st_mtime_ns == unpacked  # not unpacked again
    with open(path, "r+b") as f:  # a damaged copy in the cache is replaced by a good one
        f.seek(path.stat().st_size // 2)
        f.write(b"\xff" * 16)
    assert library_path(cache=tmp_path) == path and path.stat().st_mtime_ns != unpacked
    with HistoryStore(path) as store:
        assert len(store.find_runs()) == about["runs"]


@pytest.mark.parametrize("damage", ["truncated", "flipped", "manifest"])
def test_a_damaged_library_is_refused_in_one_line(damage, tmp_path):
    archive = tmp_path / "shipped" / ARCHIVE.name
    archive.parent.mkdir()
    shutil.copy(ARCHIVE, archive)
    shutil.copy(MANIFEST, archive.with_name(MANIFEST.name))
    data = bytearray(archive.read_bytes())
    if damage == "truncated":
        archive.write_bytes(data[:len(data) // 2])
    elif damage == "flipped":
        data[len(data) // 2] ^= 0xFF
        archive.write_bytes(bytes(data))
    else:
        archive.with_name(MANIFEST.name).write_text('{"sha256": "0000"}')
    with pytest.raises(HistoryError, match=f"the history library {archive} is damaged") as raised:
        library_path(archive, cache=tmp_path / "cache")
    assert "\n" not in str(raised.value)
    assert not list((tmp_path / "cache").glob("*"))  # nothing half-unpacked left behind


def test_the_networks_the_library_pruned_ship_and_are_pruned_unless_the_user_pretrained_one(tiny_checkpoint):
    for model in ("resnet20", "resnet56", "mobilenet_v1"):  # the library's models, as package data
        assert checkpoint_digest(shipped_checkpoint(model, "fashion-mnist")) == \
            checkpoint_digest(committed_checkpoint(model, "fashion-mnist"))
    assert default_checkpoint("resnet20", "fashion-mnist") == shipped_checkpoint("resnet20", "fashion-mnist")
    cached = checkpoint_path("resnet20", "fashion-mnist")  # `prune-gym pretrain`'s, in this test's empty cache
    cached.parent.mkdir(parents=True)
    shutil.copy(tiny_checkpoint, cached)
    assert default_checkpoint("resnet20", "fashion-mnist") == cached
    assert shipped_checkpoint("resnet18", "fashion-mnist") is None
    with pytest.raises(CheckpointError, match="no pretrained resnet18 for fashion-mnist in .*, and none ships"):
        default_checkpoint("resnet18", "fashion-mnist")


def search(cli, tiny_checkpoint: Path, fashion_root: Path, tmp_path: Path, *extra: str):
    result = cli("search", "--ratio", "0.3", "--trials", "2", "--device", "cpu", "--checkpoint", str(tiny_checkpoint),
                 "--data-root", str(fashion_root), "--history", str(tmp_path / "history.h5"),
                 "--out", str(tmp_path / "slim"), "--tensorboard", "", *extra)
    assert result.returncode == 0, result.stderr
    return [line for line in result.stdout.splitlines() if line.startswith("source: ")]


def test_the_default_search_draws_on_the_library_then_on_the_users_own_runs(cli, tiny_checkpoint, fashion_root,
                                                                            tmp_path):
    damaged = tmp_path / "damaged.h5"
    damaged.write_bytes(b"not a history file")
    said = search(cli, tiny_checkpoint, fashion_root, tmp_path, "--library", str(damaged),
                  "--library", str(tmp_path / "missing.h5"))
    assert said[0].startswith(f"source: {damaged} left out: ")
    assert said[1] == f"source: {tmp_path / 'missing.h5'} left out: no such file"
    assert said[2].startswith("source: starting from run-") and "resnet20 p = 0.3 on fashion-mnist" in said[2]
    assert said[2].endswith(f"of {library_path()} by the library preset (--from-scratch: without it)")
    with HistoryStore(tmp_path / "history.h5") as store:
        (first,) = store.find_runs()
        run = store.read_run(first.run_id)
    assert first.method == "library" and first.sources == [said[2].split()[3]] and first.n_trials == 2
    _, labels = learning_curves_figure([run]).axes[0].get_legend_handles_labels()
    assert f"{first.run_id}: 2 trials history chose" in labels  # the assistant's, marked on the curve

    said = search(cli, tiny_checkpoint, fashion_root, tmp_path, "--seed", "1")  # the user's own run comes first
    assert said == [f"source: starting from {first.run_id} (resnet20 p = 0.3 on fashion-mnist, cmaes, best "
                    f"{100 * first.best_accuracy:.2f}%, distance 0.00) of {tmp_path / 'history.h5'} by the library "
                    f"preset (--from-scratch: without it)"]


    listed = cli("history", "library")
    assert listed.returncode == 0 and f"{manifest()['runs']} finished runs" in listed.stdout
    assert any(line.split()[:4] == ["resnet20", "fashion-mnist", "0.2", "cmaes"] for line in listed.stdout.splitlines())
    shown = cli("history", "--history", "library", "show", first.sources[0], "--trials", "1")
    assert shown.returncode == 0 and "resnet20" in shown.stdout


def test_the_leave_one_out_library_hides_the_scenario_and_another_models_own_runs(tmp_path):
    from prune_gym.benchmarks.library_study import leave_one_out_library, left_out

    assert left_out("resnet20", 0.2, "resnet20", 0.2) and not left_out("resnet20", 0.2, "resnet20", 0.3)
    assert left_out("resnet56", 0.2, "resnet56", 0.5) and not left_out("resnet56", 0.2, "resnet20", 0.2)
    with HistoryStore(library_path()) as store:
        shipped = store.find_runs()
    path = leave_one_out_library("mobilenet_v1", 0.3, tmp_path)
    with HistoryStore(path) as store:
        kept = store.find_runs()
    assert {r.scenario.model for r in shipped} - {r.scenario.model for r in kept} == {"mobilenet_v1"}
    assert len(kept) == sum(r.scenario.model != "mobilenet_v1" for r in shipped)
    assert leave_one_out_library("mobilenet_v1", 0.3, tmp_path) == path  # made once


def test_the_default_searcher_is_tpe_when_the_source_is_another_networks_run(capsys):
    from prune_gym.agents.config import SearchConfig
    from prune_gym.commands.search import draw_on_history

    library = library_path()
    for model, agent in (("resnet18", "tpe"), ("mobilenet_v1", "cmaes")):  # the library holds no ResNet-18 run
        config, path = draw_on_history(SearchConfig(model, "fashion-mnist", 0.25, 2, agent="cmaes"), library, [],
                                       choose_searcher=True)
        with HistoryStore(path) as store:
            source = store.run_info(config.source)
        assert (config.agent, source.scenario.model == model) == (agent, agent == "cmaes")
    assert capsys.readouterr().out.count("searching with tpe (another network's run)") == 1
    config, _ = draw_on_history(SearchConfig("resnet18", "fashion-mnist", 0.25, 2, agent="sac"), library, [])
    assert config.agent == "sac"  # the user's own choice stands


def test_from_another_networks_run_the_library_preset_races_the_records_shrunk_and_as_they_are():
    from prune_gym.agents.config import SearchConfig
    from prune_gym.agents.loop import resolve_search
    from prune_gym.agents.presets.library import LIBRARY
    from prune_gym.commands.search import draw_on_history

    library = library_path()
    drawn = {model: draw_on_history(SearchConfig(model, "fashion-mnist", 0.25, 2, agent="tpe"), library, [])
             for model in ("resnet18", "mobilenet_v1")}  # the library holds another model's runs for the first only
    resolved = {model: resolve_search(config, path) for model, (config, path) in drawn.items()}
    assert resolved["resnet18"].assistant == {**LIBRARY.overrides()["assistant"], "shrink": 0.5, "shrink_race": 4}
    assert resolved["mobilenet_v1"].assistant == LIBRARY.overrides()["assistant"]  # its own network: no race
    config, path = drawn["resnet18"]
    own = resolve_search(dataclasses.replace(config, assistant={"shrink": 1.0}), path)
    assert own.assistant["shrink"] == 1.0  # the user's setting stands
