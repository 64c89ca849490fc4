"""Shared fixtures: small data sets written in the real on-disk formats, read by the real loaders.

Fashion-MNIST fixtures hold real images (the first few hundred of Debian's package) when the
machine has them, so that tiny models learn something real; otherwise seeded images with a
class-dependent pattern, which a tiny model also learns.
"""

from __future__ import annotations

import gzip
import os
import pickle
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from prune_gym.datasets import DEBIAN_FASHION_MNIST, FASHION_FILES, read_idx

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs a pytest-xdist worker per core: each computes on one thread, and so do the commands its
    # tests start, where torch's default of a thread per core would have the workers fight for the cores.
    import torch

    os.environ["OMP_NUM_THREADS"] = "1"
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch) -> Path:
    """Every test caches checkpoints and downloads in its own PRUNE_GYM_HOME, never the user's."""
    home = tmp_path_factory.mktemp("prune-gym-home")
    monkeypatch.setenv("PRUNE_GYM_HOME", str(home))
    return home


@pytest.fixture
def cli(capsys):
    """`prune-gym ARGS` run in this process (`prune_gym.cli.main`, what the installed command calls), for
    tests of what a command refuses: the same exit status and messages, without seconds of start-up."""
    from prune_gym.cli import main

    def run(*args: str) -> subprocess.CompletedProcess:
        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse's own errors
            code = exc.code
        out, err = capsys.readouterr()
        return subprocess.CompletedProcess(list(args), code, out, err)

    return run


def committed_trials(history: Path, run: int = 0) -> int:
    """The trials committed to the `run`-th run of a history file: 0 while the file or the run is yet to be."""
    from prune_gym.history import HistoryError, HistoryStore

    if not history.exists():
        return 0
    try:
        with HistoryStore(history) as store:
            runs = store.find_runs()
    except (HistoryError, OSError):  # the file is being created
        return 0
    return runs[run].n_trials if len(runs) > run else 0


@pytest.fixture
def kill_once_committed():
    """`kill(args, history, trials, run=0)`: start the command, SIGKILL it once the `run`-th run of `history`
    holds `trials` committed trials (or after 300 s, or when it ends first)."""

    def kill(args: list[str], history: Path, trials: int, run: int = 0) -> None:
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300
        while committed_trials(history, run) < trials and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.2)
        process.send_signal(signal.SIGKILL)
        process.wait()

    return kill


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as a gzipped IDX file (the MNIST format)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def patterned_images(n: int, channels: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noisy images whose class (0-9) sets which horizontal band is bright."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = rng.integers(0, 60, (n, channels, size, size))
    band = size // 10
    for i, label in enumerate(labels):
        images[i, :, label * band:(label + 1) * band, :] += 150
    return images.astype(np.uint8), labels.astype(np.uint8)


def fashion_images(n_train: int, n_test: int) -> dict[str, np.ndarray]:
    if all((DEBIAN_FASHION_MNIST / f"{stem}.gz").is_file() for stem in FASHION_FILES.values()):
        arrays = {k: read_idx(DEBIAN_FASHION_MNIST / f"{stem}.gz") for k, stem in FASHION_FILES.items()}
        n = {"train_images": n_train, "train_labels": n_train, "test_images": n_test, "test_labels": n_test}
        return {k: a[:n[k]] for k, a in arrays.items()}
    train_x, train_y = patterned_images(n_train, 1, 28, seed=0)
    test_x, test_y = patterned_images(n_test, 1, 28, seed=1)
    return {"train_images": train_x[:, 0], "train_labels": train_y,
            "test_images": test_x[:, 0], "test_labels": test_y}


@pytest.fixture(scope="session")
def fashion_root(tmp_path_factory) -> Path:
    """A Fashion-MNIST root of 1,200 training and 300 test images in gzipped IDX files."""
    root = tmp_path_factory.mktemp("fashion-mnist")
    for key, array in fashion_images(1200, 300).items():
        write_idx(root / f"{FASHION_FILES[key]}.gz", array)
    return root


@pytest.fixture(scope="session")
def cifar_root(tmp_path_factory) -> Path:
    """A CIFAR-10 root in torchvision's layout: five pickled training batches and a test batch."""
    root = tmp_path_factory.mktemp("cifar")
    directory = root / "cifar-10-batches-py"
    directory.mkdir()
    for i, name in enumerate([f"data_batch_{j}" for j in range(1, 6)] + ["test_batch"]):
        images, labels = patterned_images(60, 3, 32, seed=10 + i)
        batch = {"batch_label": name, "data": images.reshape(60, -1), "labels": labels.tolist()}
        with open(directory / name, "wb") as f:
            pickle.dump(batch, f)
    return root


@pytest.fixture(scope="session")
def imagefolder_root(tmp_path_factory) -> Path:
    """An ImageNet-style root: train/ and val/ folders of class folders of PNG files."""
    root = tmp_path_factory.mktemp("imagefolder")
    for split, n, seed in (("train", 30, 20), ("val", 9, 21)):
        images, labels = patterned_images(n, 3, 32, seed)
        for i, (image, label) in enumerate(zip(images, labels % 3)):
            folder = root / split / f"class{label}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image.transpose(1, 2, 0)).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="session")
def tiny_checkpoint(fashion_root, tmp_path_factory) -> Path:
    """ResNet-20 trained briefly on the fixture's Fashion-MNIST (reward split 200, calibration 100)."""
    from prune_gym.pretrain import Recipe, SplitSpec, pretrain

    home = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PRUNE_GYM_HOME", str(home))
        result = pretrain("resnet20", "fashion-mnist", fashion_root, Recipe(epochs=4, batch_size=64, max_lr=0.1),
                          SplitSpec(seed=0, calibration_size=100, reward_size=200), device="cpu", progress=False)
    return result.path


@pytest.fixture(scope="session")
def retrained_checkpoint(tiny_checkpoint, tmp_path_factory) -> Path:
    """The tiny checkpoint's network with other weights, as the same recipe gives on another CPU."""
    import torch

    from prune_gym.checkpoints import read_checkpoint, save_checkpoint
    from prune_gym.models import build_model

    state, metadata = read_checkpoint(tiny_checkpoint)
    model = build_model("resnet20", **metadata["input"])
    model.load_state_dict({k: v + 1e-3 if v.is_floating_point() else v for k, v in state.items()})
    path = tmp_path_factory.mktemp("retrained") / "resnet20.pt"
    save_checkpoint(path, model, {k: v for k, v in metadata.items() if k != "digest"})
    return path


@pytest.fixture
def make_env(fashion_root, tiny_checkpoint):
    """gym.make('ChannelPrune-v0') on the tiny trained ResNet-20, with overridable keyword arguments."""
    import gymnasium as gym

    import prune_gym

    def make(**kwargs):
        settings = dict(model="resnet20", dataset="fashion-mnist", target_ratio=0.5, device="cpu",
                        checkpoint=tiny_checkpoint, data_root=fashion_root, calibration_images=100)
        settings.update(kwargs)
        return gym.make(prune_gym.ENV_ID, **settings)

    return make
