"""History integrity and the README's commands: checksums verified on read, `history check` on
damaged copies of a real file, a transfer refused from a damaged run, the learning curve's marks."""

from __future__ import annotations

import dataclasses
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from prune_gym.agents.config import SearchConfig
from prune_gym.agents.loop import run_search
from prune_gym.cli import build_parser
from prune_gym.errors import PruneGymError
from prune_gym.history import HistoryStore
from prune_gym.history.check import check_file
from prune_gym.history.plot import learning_curves_figure

REPOSITORY = Path(__file__).parents[1]
PRUNE_GYM = str(Path(sys.executable).with_name("prune-gym"))


@pytest.fixture(scope="module")
def real_history(tiny_checkpoint, fashion_root, tmp_path_factory) -> tuple[Path, SearchConfig]:
    """Two finished 3-trial searches (run-0001 at p = 0.5, run-0002 at 0.3) in one history file."""
    path = tmp_path_factory.mktemp("real") / "history.h5"
    config = SearchConfig(ratio=0.5, trials=3, warmup=2, seed=0, device="cpu", checkpoint=str(tiny_checkpoint),
                          data_root=str(fashion_root), env_kwargs={"calibration_images": 100})
    run_search(config, path, progress=False)
    run_search(dataclasses.replace(config, ratio=0.3), path, progress=False)
    return path, config


def weights_extents(path: Path) -> dict[str, tuple[int, int]]:
    """Each weights dataset's byte range in the file (they are stored contiguously)."""
    extents = {}
    with h5py.File(path, "r") as f:
        def visit(name, item):
            if isinstance(item, h5py.Dataset) and "/weights/" in item.name and item.id.get_storage_size():
                start = item.id.get_offset()
                extents[item.name] = (start, start + item.id.get_storage_size())
        f.visititems(visit)
    return extents


def damage(path: Path, offset: int, length: int) -> None:
    """Flip every bit of `length` bytes at `offset`."""
    with open(path, "r+b") as f:
        f.seek(offset)
        data = f.read(length)
        f.seek(offset)
        f.write(bytes(b ^ 0xFF for b in data))


def test_check_finds_every_damaged_weights_dataset_and_passes_the_clean_file(real_history, tmp_path):
    path, _ = real_history
    clean = check_file(path)
    assert not clean.damaged and clean.runs == 2 and clean.unverified == 0
    extents = weights_extents(path)
    assert len(extents) >= 8  # actor and critic parameters of the final and trial snapshots
    size = path.stat().st_size
    rng = np.random.default_rng(0)
    hits = 0
    for copy in range(24):
        offset, length = int(rng.integers(0, size - 16)), 16
        damaged = tmp_path / f"copy-{copy}.h5"
        shutil.copyfile(path, damaged)
        damage(damaged, offset, length)
        expected = {name for name, (start, end) in extents.items() if start < offset + length and offset < end}
        report = check_file(damaged)
        assert expected <= report.damaged_datasets(), (offset, expected, report.lines())
        hits += bool(expected)
    assert hits >= 12  # most of a search's file is its weights
    assert not check_file(path).damaged  # the original, untouched


def test_check_on_the_command_line_names_the_damage(real_history, tmp_path):
    path, _ = real_history
    ok = subprocess.run([PRUNE_GYM, "history", "check", "--history", str(path)], capture_output=True, text=True)
    assert ok.returncode == 0 and "every dataset reads and matches its checksum" in ok.stdout
    damaged = tmp_path / "damaged.h5"
    shutil.copyfile(path, damaged)
    name, (start, _) = next((n, e) for n, e in weights_extents(path).items() if "run-0001/weights/final/actor" in n)
    damage(damaged, start + 8, 4)
    result = subprocess.run([PRUNE_GYM, "history", "--file", str(damaged), "check"], capture_output=True, text=True)
    assert result.returncode == 1 and "DAMAGED" in result.stdout and f"run-0001: {name}" in result.stdout
    assert "Traceback" not in result.stderr


def test_a_transfer_from_a_damaged_run_is_refused(real_history, tmp_path):
    path, config = real_history
    damaged = tmp_path / "damaged.h5"
    shutil.copyfile(path, damaged)
    name, (start, _) = next((n, e) for n, e in weights_extents(path).items() if "run-0001/weights/final/critic" in n)
    damage(damaged, start, 4)
    vanilla = dataclasses.replace(config, ratio=0.3, method="vanilla", source="run-0001", warmup=None, trials=1)
    with pytest.raises(PruneGymError, match=re.escape(f"{name} is damaged")):
        run_search(vanilla, damaged, progress=False)
    with HistoryStore(damaged) as store:
        assert len(store.find_runs()) == 2  # refused before the search wrote anything


def test_a_damaged_unit_table_is_refused_on_read(real_history, tmp_path):
    path, _ = real_history
    damaged = tmp_path / "damaged.h5"
    shutil.copyfile(path, damaged)
    with h5py.File(path, "r") as f:
        start = f["runs/run-0002/unit_features"].id.get_offset()
    damage(damaged, start, 4)
    with HistoryStore(damaged) as store, pytest.raises(PruneGymError, match="unit_features is damaged"):
        store.read_run("run-0002")


def readme_commands() -> list[str]:
    """Every `prune-gym ...` command in the README, in code blocks and inline."""
    text = (REPOSITORY / "README.md").read_text()
    block_lines = [line.split("#")[0].strip() for block in re.findall(r"```bash\n(.*?)```", text, re.S)
                   for line in block.splitlines()]
    inline = re.findall(r"`(prune-gym [^`]+)`", text)
    return [c for c in block_lines + inline if c.startswith("prune-gym ")]


def test_every_readme_command_parses_and_the_history_ones_run_as_written(real_history, tmp_path, monkeypatch, cli):
    commands = readme_commands()
    assert len(commands) >= 15 and any("--history runs/quickstart.h5" in c for c in commands)
    parser = build_parser()
    for command in commands:
        parser.parse_args(shlex.split(command)[1:])  # argparse exits on anything it refuses
    path, _ = real_history
    (tmp_path / "runs").mkdir()
    shutil.copyfile(path, tmp_path / "runs" / "quickstart.h5")
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(path, home / "history.h5")
    monkeypatch.setenv("PRUNE_GYM_HOME", str(home))
    history_commands = [c for c in commands if c.startswith("prune-gym history")]
    assert len(history_commands) >= 5
    monkeypatch.chdir(tmp_path)
    for command in history_commands:
        result = cli(*shlex.split(command)[1:])
        assert result.returncode == 0, (command, result.stderr)
    assert (tmp_path / "curves.png").stat().st_size > 0 and (tmp_path / "trials.csv").read_text().count("\n") == 4


def test_the_learning_curve_marks_the_best_trial_the_warmup_the_uniform_policy_and_who_chose(real_history):
    path, _ = real_history
    with HistoryStore(path) as store:
        run = store.read_run("run-0001")
    _, labels = learning_curves_figure([run], uniform_accuracy=0.5).axes[0].get_legend_handles_labels()
    best = run.best_trial()
    assert f"run-0001 best: {100 * run.accuracies[best]:.2f}% at trial {best}" in labels
    assert "run-0001 warm-up ends (2 trials)" in labels and "uniform policy: 50.00%" in labels
    assert f"run-0001: {run.n_trials} trials the searcher chose" in labels  # from scratch: history chose none
    assert not any("history chose" in label for label in labels)


def test_nothing_in_the_repository_sends_a_reader_to_the_design_notes():
    design_notes = "DESIGN" + ".md"  # not in the repository
    files = subprocess.run(["git", "ls-files"], cwd=REPOSITORY, capture_output=True, text=True).stdout.split()
    mentions = [f for f in files if f.endswith((".py", ".md", ".toml", ".sh")) and
                design_notes in (REPOSITORY / f).read_text(errors="ignore")]
    assert mentions == []
