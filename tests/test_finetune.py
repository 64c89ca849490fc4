"""Fine-tuning a slim export for real on the tiny checkpoint: it pays, it resumes after a kill to the same
weights, and bad input gets one line."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from prune_gym.checkpoints import read_checkpoint
from prune_gym.errors import PruneGymError
from prune_gym.evaluation import accuracy
from prune_gym.export import FINETUNE_STATE_FILE as STATE_FILE
from prune_gym.export import export_slim, load_slim
from prune_gym.finetune import FinetuneRecipe, finetune_export
from prune_gym.policies import play, uniform_policy

PRUNE_GYM = str(Path(sys.executable).with_name("prune-gym"))


@pytest.fixture(scope="module")
def slim_export(tiny_checkpoint, fashion_root, tmp_path_factory) -> Path:
    """The uniform policy at p = 0.3 on the tiny ResNet-20, pruned by magnitude without refitting (the way
    a user's own pruning tool would leave it), exported."""
    import gymnasium as gym

    import prune_gym

    env = gym.make(prune_gym.ENV_ID, model="resnet20", dataset="fashion-mnist", target_ratio=0.3, device="cpu",
                   checkpoint=tiny_checkpoint, data_root=fashion_root, calibration_images=100,
                   reconstruction="magnitude")
    out = tmp_path_factory.mktemp("slim")
    export_slim(env, out, play(env, uniform_policy(env.unwrapped.budget)))
    return out


def copy_of(export: Path, tmp_path: Path) -> Path:
    shutil.copytree(export, tmp_path / "export")
    return tmp_path / "export"


def test_a_short_fine_tune_raises_the_pruned_models_test_accuracy(slim_export, tiny_checkpoint, fashion_root,
                                                                 tmp_path):
    export = copy_of(slim_export, tmp_path)
    # Three epochs of the fixture's few hundred images: one (a few steps) raised it on some networks the
    # fixture's recipe gives and not on others.
    result = finetune_export(export, FinetuneRecipe(epochs=3, batch_size=64), device="cpu",
                             checkpoint=tiny_checkpoint, data_root=fashion_root, progress=False)
    assert result.test_accuracy_after > result.test_accuracy_before + 0.05
    record = json.loads((export / "finetune.json").read_text())
    assert record["test_accuracy_after"] == result.test_accuracy_after and record["recipe"]["epochs"] == 3
    assert not (export / STATE_FILE).exists()
    from prune_gym.datasets import load_splits
    test = load_splits("fashion-mnist", fashion_root, 0, 100, 200).test
    assert accuracy(load_slim(export, weights="finetuned.pt"), test.batches(500)) == result.test_accuracy_after
    assert accuracy(load_slim(export), test.batches(500)) == result.test_accuracy_before  # the export is kept

    distilled = finetune_export(export, FinetuneRecipe(epochs=3, batch_size=64, distill=0.5),
                                device="cpu", checkpoint=tiny_checkpoint, data_root=fashion_root, progress=False)
    assert distilled.test_accuracy_before == result.test_accuracy_before  # from the export, not the last fine-tune
    assert distilled.test_accuracy_after > distilled.test_accuracy_before + 0.05


def test_the_unpruned_weights_are_checked_by_digest_whatever_their_file(slim_export, tiny_checkpoint,
                                                                        fashion_root, tmp_path):
    export = copy_of(slim_export, tmp_path)
    state, metadata = read_checkpoint(tiny_checkpoint)
    plain = tmp_path / "plain.pt"  # the same weights with no digest recorded: it is computed from them
    torch.save({"state_dict": state, "metadata": {"split": metadata["split"]}}, plain)
    recipe = FinetuneRecipe(epochs=1, batch_size=256, schedule="one-cycle")
    finetune_export(export, recipe, device="cpu", checkpoint=plain, data_root=fashion_root, progress=False)
    other = tmp_path / "other.pt"
    torch.save({"state_dict": {k: v + 1 if v.is_floating_point() else v for k, v in state.items()},
                "metadata": {"split": metadata["split"]}}, other)
    with pytest.raises(PruneGymError, match="holds other weights than the ones .* was pruned from"):
        finetune_export(export, recipe, device="cpu", checkpoint=other, data_root=fashion_root, progress=False)

    # A new export into the directory removes what was derived from the old one.
    assert (export / "finetuned.pt").exists()
    spec = json.loads((export / "spec.json").read_text())
    (export / "finetune-state.pt").write_bytes(b"stale")
    import gymnasium as gym

    import prune_gym
    env = gym.make(prune_gym.ENV_ID, model="resnet20", dataset="fashion-mnist", target_ratio=spec["target_ratio"],
                   device="cpu", checkpoint=tiny_checkpoint, data_root=fashion_root, calibration_images=100)
    export_slim(env, export, play(env, uniform_policy(env.unwrapped.budget)))
    assert not any((export / name).exists() for name in ("finetuned.pt", "finetune.json", "finetune-state.pt"))


def test_a_killed_finetune_resumes_after_its_last_epoch_to_the_same_weights(slim_export, tiny_checkpoint,
                                                                            fashion_root, tmp_path):
    args = ["finetune", "--epochs", "3", "--batch-size", "64", "--checkpoint", str(tiny_checkpoint),
            "--data-root", str(fashion_root), "--device", "cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    whole = copy_of(slim_export, tmp_path / "whole")
    done = subprocess.run([PRUNE_GYM, *args, str(whole)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr

    killed = copy_of(slim_export, tmp_path / "killed")
    process = subprocess.Popen([PRUNE_GYM, *args, str(killed)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=env)
    deadline = time.monotonic() + 240
    while not (killed / STATE_FILE).exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    epochs_done = torch.load(killed / STATE_FILE, weights_only=True)["epochs_done"]
    assert 1 <= epochs_done < 3 and not (killed / "finetuned.pt").exists()

    resumed = subprocess.run([PRUNE_GYM, *args, str(killed)], capture_output=True, text=True, env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert f"resumed after epoch {epochs_done} of 3" in resumed.stdout
    expected = torch.load(whole / "finetuned.pt", weights_only=True)
    got = torch.load(killed / "finetuned.pt", weights_only=True)
    assert expected.keys() == got.keys() and all(torch.equal(expected[k], got[k]) for k in expected)


def test_bad_input_gets_a_one_line_error(cli, slim_export, tmp_path):
    result = cli("finetune", str(tmp_path))
    assert result.returncode == 2 and result.stderr.strip() == (
        f"prune-gym: error: {tmp_path} is not a slim export: no spec.json there")
    export = copy_of(slim_export, tmp_path)
    result = cli("finetune", str(export), "--distill", "2")
    assert result.returncode == 2 and "distill is the KL term's weight, in [0, 1]; got 2.0" in result.stderr
    result = cli("finetune", str(export), "--epochs", "0")
    assert result.returncode == 2 and "at least one epoch" in result.stderr
    result = cli("finetune", str(export), "--distill", "2")
    assert result.returncode == 2 and "distill is the KL term's weight, in [0, 1]; got 2.0" in result.stderr
    result = cli("finetune", str(export), "--checkpoint", str(tmp_path / "nope.pt"))
    assert result.returncode == 2 and "nope.pt does not exist" in result.stderr
    (export / "spec.json").write_text("{not json")
    with pytest.raises(PruneGymError, match="is not a prune-gym slim-model spec"):
        finetune_export(export)


def test_a_fine_tuned_search_export_is_noted_in_its_run(cli, tiny_checkpoint, fashion_root, tmp_path):
    history, out = tmp_path / "history.h5", tmp_path / "best"
    result = cli("search", "--ratio", "0.3", "--trials", "2", "--warmup", "2", "--device", "cpu", "--checkpoint",
                 str(tiny_checkpoint), "--data-root", str(fashion_root), "--history", str(history), "--out",
                 str(out), "--tensorboard", "")
    assert result.returncode == 0, result.stderr
    tuned = finetune_export(out, FinetuneRecipe(epochs=1, batch_size=64), device="cpu", checkpoint=tiny_checkpoint,
                            data_root=fashion_root, progress=False)
    from prune_gym.history import HistoryStore
    with HistoryStore(history) as store:
        note = store.find_runs()[0].notes["finetune"]
    assert note["export"] == str(out.resolve()) and note["test_accuracy_after"] == tuned.test_accuracy_after
