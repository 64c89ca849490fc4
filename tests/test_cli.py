"""The `prune-gym` command: the installed one in real subprocesses, and one-line errors, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PRUNE_GYM = Path(sys.executable).with_name("prune-gym")


def prune_gym(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(PRUNE_GYM), *args], capture_output=True, text=True, env=os.environ.copy(),
                          timeout=300)


def assert_one_line_error(result: subprocess.CompletedProcess, *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "error:" in last
    for needle in needles:
        assert needle in last


def test_models_lists_the_zoo_with_sizes():
    result = prune_gym("models")
    assert result.returncode == 0, result.stderr
    assert "resnet20" in result.stdout and "269,722" in result.stdout and "40.55 M" in result.stdout
    assert "mobilenet_v1" in result.stdout and "568.74 M" in result.stdout


def test_pretrain_then_reuse(fashion_root):
    args = ["pretrain", "--model", "resnet20", "--dataset", "fashion-mnist", "--data-root", str(fashion_root),
            "--epochs", "1", "--device", "cpu", "--calibration-size", "100", "--reward-size", "100"]
    first = prune_gym(*args)
    assert first.returncode == 0, first.stderr
    assert "trained in" in first.stdout and "test accuracy" in first.stdout
    second = prune_gym(*args)
    assert second.returncode == 0 and "reused cached" in second.stdout


@pytest.mark.parametrize("args, needles", [
    (["pretrain", "--model", "vgg", "--dataset", "fashion-mnist"], ["invalid choice", "resnet20"]),
    (["pretrain", "--model", "resnet20", "--dataset", "mnist"], ["invalid choice", "cifar10"]),
    (["pretrain", "--model", "resnet20", "--dataset", "cifar10", "--data-root", "/nonexistent"],
     ["/nonexistent does not exist"]),
    (["pretrain", "--model", "resnet20", "--dataset", "cifar10", "--data-root", "/tmp"],
     ["cifar-10-batches-py", "data_batch_1"]),
    (["pretrain", "--model", "resnet20", "--dataset", "fashion-mnist", "--device", "cuda:7"], ["cuda:7"]),
])
def test_bad_input_gets_a_one_line_error(cli, args, needles):
    assert_one_line_error(cli(*args), *needles)
