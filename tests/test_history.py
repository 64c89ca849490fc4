"""The HDF5 history store: real files, real processes killed and racing, the documented layout."""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from matplotlib.image import imread

from prune_gym.cli import main as cli_main
from prune_gym.history import HistoryError, HistoryStore, Scenario

UNITS, FEATURES = 4, 3


def scenario(ratio: float = 0.3) -> Scenario:
    return Scenario("resnet20", "fashion-mnist", "abc123", ratio, "accuracy", [f"u{i}" for i in range(UNITS)],
                    ["a", "b", "c"], np.arange(UNITS * FEATURES, dtype=np.float32).reshape(UNITS, FEATURES))


def append(writer, trial: int, origin: str = "actor") -> None:
    obs = np.full((UNITS, FEATURES), trial, dtype=np.float32)
    writer.append_trial(obs, np.linspace(0.2, 0.8, UNITS) + trial / 100, 0.5 + trial / 100, 0.5 + trial / 100,
                        0.3, origin, 1.5)


def test_round_trip_queries_weights_and_transitions(tmp_path):
    path = tmp_path / "h.h5"
    with HistoryStore(path, "a") as store:
        writer = store.start_run(scenario(), "baseline", {"warmup": 2}, seed=7, sources=["run-0009"])
        for t in range(3):
            append(writer, t, "warmup" if t < 2 else "actor")
        writer.save_weights("final", {"actor": {"w": np.ones((2, 2))}, "critic": {"q": np.zeros(3)}})
        writer.finish()
        other = store.start_run(scenario(0.5), "baseline", {}, seed=1)
        append(other, 0)
        other.finish()

    with HistoryStore(path) as store:
        assert [r.run_id for r in store.find_runs(target_ratio=0.3)] == ["run-0001"]
        assert len(store.find_runs(model="resnet20", dataset="fashion-mnist")) == 2
        run = store.read_run("run-0001")
        weights = store.load_weights("run-0001")
    assert run.info.status == "finished" and run.info.seed == 7 and run.info.sources == ["run-0009"]
    assert run.info.settings == {"warmup": 2} and "torch" in run.info.versions
    assert run.n_trials == 3 and list(run.origins) == ["warmup", "warmup", "actor"]
    assert np.allclose(run.best_policy(), np.linspace(0.2, 0.8, UNITS) + 0.02)  # the best-accuracy trial's
    assert (np.array_equal(weights["actor"]["w"], np.ones((2, 2)))
            and np.array_equal(weights["critic"]["q"], np.zeros(3)))
    transitions = run.transitions()
    assert transitions.obs.shape == (3 * UNITS, FEATURES) and transitions.actions.shape == (3 * UNITS, 1)
    assert transitions.dones.sum() == 3 and transitions.rewards[UNITS - 1] == pytest.approx(0.5)
    assert transitions.rewards[0] == 0 and np.array_equal(transitions.next_obs[-1], transitions.obs[-1])


def test_a_finished_run_of_another_file_is_imported_under_the_next_id(tmp_path):
    side, library = tmp_path / "side.h5", tmp_path / "library.h5"
    with HistoryStore(side, "a") as store:
        writer = store.start_run(scenario(0.5), "vanilla", {"warmup": 0}, seed=3, sources=["run-0001"])
        for t in range(4):
            append(writer, t)
        writer.save_weights("final", {"actor": {"w": np.ones(2)}, "critic": {"q": np.zeros(2)}})
        writer.finish()
        store.start_run(scenario(), "baseline", {}, seed=0)  # left unfinished
    with HistoryStore(library, "a") as store:
        append(first := store.start_run(scenario(), "baseline", {}, seed=0), 0)
        first.finish()
        assert store.import_run(side, "run-0001") == "run-0002"
        with pytest.raises(HistoryError, match="only a finished run"):
            store.import_run(side, "run-0002")
    with HistoryStore(side) as store, HistoryStore(library) as copy:
        original, imported = store.read_run("run-0001"), copy.read_run("run-0002")
        assert np.array_equal(copy.load_weights("run-0002")["actor"]["w"], np.ones(2))
    assert imported.info.sources == ["run-0001"] and imported.info.method == "vanilla"
    assert imported.info.status == "finished" and np.array_equal(imported.actions, original.actions)
    assert np.array_equal(imported.accuracies, original.accuracies)


def test_the_documented_layout_reads_with_plain_h5py(tmp_path):
    path = tmp_path / "h.h5"
    with HistoryStore(path, "a") as store:
        writer = store.start_run(scenario(), "baseline", {}, seed=0)
        append(writer, 0)
        writer.finish()
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == "prune-gym history" and f.attrs["schema_version"] == 1
        run = f["runs/run-0001"]
        assert run.attrs["status"] == "finished" and run.attrs["target_ratio"] == 0.3
        assert list(run["unit_names"].asstr()[()]) == ["u0", "u1", "u2", "u3"]
        assert run["observations"].shape == (1, UNITS, FEATURES) and run["actions"].shape == (1, UNITS)
        assert run["trials"]["origin"][0] == b"actor" and run["best_policy"].shape == (UNITS,)


WRITER = textwrap.dedent("""
    import sys, numpy as np
    from prune_gym.history import HistoryStore, Scenario
    units, features = 4, 3
    scenario = Scenario("resnet20", "fashion-mnist", "d", 0.3, "accuracy", [f"u{i}" for i in range(units)],
                        ["a", "b", "c"], np.zeros((units, features), np.float32))
    with HistoryStore(sys.argv[1], "a") as store:
        writer = store.start_run(scenario, "baseline", {}, seed=0)
        for t in range(100000):
            writer.append_trial(np.full((units, features), t, np.float32), np.full(units, 0.5), 0.1, 0.1, 0.3,
                                "actor", 0.0)
            print(t, flush=True)
""")


def start_writer(path: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)


def test_a_writer_killed_with_sigkill_leaves_every_acknowledged_trial(tmp_path):
    path = tmp_path / "h.h5"
    writer = start_writer(path)
    acknowledged = -1
    while acknowledged < 40:
        acknowledged = int(writer.stdout.readline())
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    with HistoryStore(path) as store:
        (info,) = store.find_runs()
        run = store.read_run(info.run_id)
    assert info.status == "interrupted"
    assert run.n_trials >= acknowledged + 1
    assert np.array_equal(run.observations[:, 0, 0], np.arange(run.n_trials))  # every trial, in order

    with HistoryStore(path, "a") as store:  # resumed: numbering goes on
        writer = store.resume_run(info.run_id)
        n = writer.n_trials
        append(writer, 999)
        writer.finish()
        run = store.read_run(info.run_id)
    assert run.n_trials == n + 1 and run.observations[n, 0, 0] == 999 and run.info.status == "finished"
    assert len(run.info.resume_times) == 1


def test_readers_read_while_a_writer_appends_and_a_second_writer_is_refused(tmp_path):
    path = tmp_path / "h.h5"
    writer = start_writer(path)
    try:
        while int(writer.stdout.readline()) < 5:
            pass
        seen = []
        for _ in range(20):
            with HistoryStore(path) as store:
                (info,) = store.find_runs()
                run = store.read_run(info.run_id)
            assert info.status == "running"
            assert np.array_equal(run.observations[:, 0, 0], np.arange(run.n_trials))  # never a half append
            seen.append(run.n_trials)
            time.sleep(0.05)  # readers back to back can starve the writer's lock polls
        assert seen == sorted(seen) and seen[-1] > seen[0]
        start = time.monotonic()
        with pytest.raises(HistoryError, match=f"{path.name}.*pid {writer.pid}"):
            HistoryStore(path, "a", timeout=0.5)
        assert time.monotonic() - start < 5
    finally:
        writer.kill()
        writer.wait()
    with HistoryStore(path) as store:  # the refused writer left the file intact
        assert store.read_run("run-0001").n_trials > seen[-1] - 1


def test_bad_files_and_runs_are_named(tmp_path):
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5")
    with pytest.raises(HistoryError, match="notes.h5"):
        HistoryStore(text)
    with pytest.raises(HistoryError, match="notes.h5"):
        HistoryStore(text, "a")
    assert text.read_text() == "not hdf5"  # never overwritten

    good = tmp_path / "good.h5"
    with HistoryStore(good, "a") as store:
        writer = store.start_run(scenario(), "baseline", {}, seed=0)
        for t in range(20):
            append(writer, t)
        writer.finish()
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 3])
    with pytest.raises(HistoryError, match="truncated.h5"):
        HistoryStore(truncated).read_run("run-0001")

    with h5py.File(good, "r+") as f:
        f.attrs["schema_version"] = 99
    with pytest.raises(HistoryError, match="good.h5.*schema version 99"):
        HistoryStore(good)

    empty = tmp_path / "empty.h5"
    HistoryStore(empty, "a").close()
    with HistoryStore(empty) as store:
        with pytest.raises(HistoryError, match="run-0042"):
            store.read_run("run-0042")
    with pytest.raises(HistoryError, match="no history file"):
        HistoryStore(tmp_path / "missing.h5")


def test_command_line_lists_shows_plots_and_exports(tmp_path, capsys):
    path = tmp_path / "h.h5"
    with HistoryStore(path, "a") as store:
        for ratio in (0.3, 0.5):
            writer = store.start_run(scenario(ratio), "baseline", {}, seed=0)
            for t in range(6):
                append(writer, t)
            writer.finish()
    assert cli_main(["history", "--file", str(path), "ls"]) == 0
    listing = capsys.readouterr().out
    assert "run-0001" in listing and "run-0002" in listing and "finished" in listing
    assert cli_main(["history", "--file", str(path), "show", "run-0002"]) == 0
    assert "0.5" in capsys.readouterr().out
    png = tmp_path / "curves.png"
    assert cli_main(["history", "--file", str(path), "plot", "run-0001", "run-0002", "--out", str(png)]) == 0
    assert imread(png).shape[:2] == (500, 800)
    out = tmp_path / "trials.csv"
    assert cli_main(["history", "--file", str(path), "export", "run-0001", "--csv", "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 6 and rows[5]["trial"] == "5" and float(rows[5]["accuracy"]) == pytest.approx(0.55)
    assert cli_main(["history", "--file", str(path), "show", "run-0042"]) == 2

    result = subprocess.run([str(Path(sys.executable).with_name("prune-gym")), "history", "--file", str(path), "ls"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "run-0002" in result.stdout


def test_the_readme_example_runs_on_a_real_file(tmp_path):
    path = tmp_path / "h.h5"
    with HistoryStore(path, "a") as store:
        writer = store.start_run(scenario(), "baseline", {"warmup": 2}, seed=0)
        for t in range(3):
            append(writer, t)
        writer.save_weights("final", {"actor": {"w": np.ones(2)}, "critic": {"q": np.zeros(2)}})
        writer.finish()
    readme = (Path(__file__).parents[1] / "history" / "README.md").read_text()
    namespace = {"path": path}
    exec(readme.split("```python\n")[1].split("```")[0], namespace)
    run = namespace["runs"]["run-0001"]
    assert run["settings"] == {"warmup": 2} and run["status"] == "finished"
    assert list(run["origin"]) == ["actor"] * 3 and run["observations"].shape == (3, UNITS, FEATURES)
    assert np.array_equal(run["weights"]["final"]["actor"]["w"], np.ones(2))


def test_a_foreign_hdf5_file_is_refused_and_left_alone(tmp_path):
    foreign = tmp_path / "other.h5"
    with h5py.File(foreign, "w") as f:
        f["data"] = np.arange(3)
    before = foreign.read_bytes()
    with pytest.raises(HistoryError, match="other.h5.*not a prune-gym history"):
        HistoryStore(foreign, "a")
    assert foreign.read_bytes() == before


def test_plot_and_export_never_overwrite_without_force(tmp_path, capsys):
    path = tmp_path / "h.h5"
    with HistoryStore(path, "a") as store:
        writer = store.start_run(scenario(), "baseline", {}, seed=0)
        append(writer, 0)
    png = tmp_path / "mine.png"
    png.write_bytes(b"keep")
    assert cli_main(["history", "--file", str(path), "plot", "run-0001", "--out", str(png)]) == 2
    assert "--force" in capsys.readouterr().err and png.read_bytes() == b"keep"
    assert cli_main(["history", "--file", str(path), "plot", "run-0001", "--out", str(png), "--force"]) == 0
    assert imread(png).shape[:2] == (500, 800)


def test_the_scale_benchmark_round_trips_at_a_small_size(tmp_path):
    from prune_gym.benchmarks.probes.history_scale import measure

    figures = measure(tmp_path / "h.h5", trials=200, units=50, features=12)
    assert figures["trials"] == 200 and figures["file_mb"] > 0


def test_a_study_export_adds_to_the_held_trials_and_takes_only_finished_runs(tmp_path):
    from prune_gym.benchmarks.data_export import TRIAL_COLUMNS, finished_run, held_trials, write_csv_gz

    data = tmp_path / "study-trials.csv.gz"
    assert held_trials(data) == ([], set())
    row = [f"v{i}" for i in range(len(TRIAL_COLUMNS))]
    write_csv_gz(data, TRIAL_COLUMNS, [row])
    assert held_trials(data) == ([row], {"v1"})  # the job column's value

    path = tmp_path / "search.h5"
    assert finished_run(path) is None
    with HistoryStore(path, "a") as store:
        writer = store.start_run(scenario(), "baseline", {}, 0)
        append(writer, 0)
        writer.close()  # interrupted
    assert finished_run(path) is None
    with HistoryStore(path, "a") as store:
        writer = store.resume_run("run-0001")
        append(writer, 1)
        writer.finish()
    run = finished_run(path)
    assert run is not None and run.n_trials == 2 and run.info.status == "finished"
