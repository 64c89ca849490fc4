"""`prune-gym sweep` as a user runs it: killed in its second budget and resumed, with its curve and exports."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from prune_gym.history import HistoryStore
from prune_gym.history.library import library_path

PRUNE_GYM = str(Path(sys.executable).with_name("prune-gym"))


def test_a_sweep_killed_in_its_second_budget_resumes_it_and_draws_each_budget_on_the_nearest_run(
        cli, kill_once_committed, tiny_checkpoint, fashion_root, tmp_path):
    """0.25 draws on the library (its 0.2 runs are nearest); 0.24 on the sweep's 0.25, nearer than any there."""
    out = tmp_path / "sweep"
    args = ["sweep", "--ratios", "0.25", "0.24", "--trials", "4", "--device", "cpu", "--checkpoint",
            str(tiny_checkpoint), "--data-root", str(fashion_root), "--out", str(out)]
    history = out / "history.h5"
    kill_once_committed([PRUNE_GYM, *args], history, 2, run=1)
    state = json.loads((out / "sweep.json").read_text())
    assert list(state["points"]) == ["p0.25"] and set(state["sources"]) == {"p0.25", "p0.24"}
    assert state["sources"]["p0.25"]["library"] == str(library_path())
    with HistoryStore(history) as store:
        first, second = store.find_runs()
    assert first.status == "finished" and second.status == "interrupted" and 2 <= second.n_trials < 4
    assert second.sources == [first.run_id] and state["sources"]["p0.24"]["library"] == str(history)

    resumed = cli(*args)
    assert resumed.returncode == 0, resumed.stderr
    assert f"p0.25: done in an earlier run of this sweep ({first.run_id})" in resumed.stdout
    assert f"p0.24: starting from {first.run_id} of {history}, as this sweep chose before" in resumed.stdout
    with HistoryStore(history) as store:
        runs = store.find_runs()
    assert [(r.run_id, r.status, r.n_trials) for r in runs] == [(first.run_id, "finished", 4),
                                                                (second.run_id, "finished", 4)]
    state = json.loads((out / "sweep.json").read_text())
    for key, run in (("p0.25", first), ("p0.24", second)):
        point = state["points"][key]
        spec = json.loads((out / key / "spec.json").read_text())
        assert point["run_id"] == run.run_id and spec["source_run"]["run_id"] == run.run_id
        assert abs(point["searched"]["macs_ratio"] - spec["macs_ratio"]) < 1e-6
        assert point["searched"]["macs_ratio"] <= float(key[1:]) + 1e-6  # the budget holds
        assert point["torch_pruning"]["macs_ratio"] <= point["searched"]["macs_ratio"] + 1e-6
        assert 0 < point["uniform"]["test_accuracy"] <= 1 and point["searched"]["latency_ms"] > 0
        assert f"{float(key[1:]):<6g} {run.run_id}" in resumed.stdout  # its line of the table
    assert (out / "pareto.png").stat().st_size > 0
    other = cli(*args[:5], "5", *args[6:])  # the same folder, another number of trials
    assert other.returncode == 2 and f"{out} holds another sweep" in other.stderr


def test_a_sweep_refuses_a_budget_named_twice(cli, tmp_path):
    result = cli("sweep", "--ratios", "0.5", "0.5", "--out", str(tmp_path / "sweep"))
    assert result.returncode == 2 and "--ratios names a budget twice: 0.5 0.5" in result.stderr
    assert not (tmp_path / "sweep").exists()
