"""Data sets, split by a seed into training, calibration, reward and test images.

The calibration split (reconstruction targets) and the reward split (the env's accuracy)
are both held out from the training images and disjoint, so neither pretraining nor the
refit sees the images that score a pruned network. Fashion-MNIST and CIFAR-10 live in
memory as uint8 tensors and are normalised batch by batch on the device; an image folder
is read lazily through torchvision.
"""

from __future__ import annotations

import gzip
import os
import pickle
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset
if TYPE_CHECKING:  # torchvision is imported where it is used: it costs seconds at every start otherwise
    from torchvision import datasets as tvd

from prune_gym.errors import DataNotFoundError, PruneGymError, UnknownNameError
from prune_gym.paths import home_dir

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about the images."""

    name: str
    in_channels: int
    num_classes: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


Batch = tuple[torch.Tensor, torch.Tensor]


class ImageSplit(ABC):
    """A set of labelled images that yields normalised batches on a device."""

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def batches(self, batch_size: int, device: torch.device | str = "cpu", shuffle: bool = False,
                augment: bool = False, generator: torch.Generator | None = None) -> Iterator[Batch]:
        """Float images normalised by the data set's statistics, and int64 labels."""

    def tensors(self, device: torch.device | str = "cpu", batch_size: int = 500, limit: int | None = None) -> Batch:
        """The split's first `limit` images (all by default) as two tensors, reading no further."""
        xs, ys, count = [], [], 0
        for x, y in self.batches(batch_size, device):
            xs.append(x)
            ys.append(y)
            count += len(y)
            if limit is not None and count >= limit:
                break
        return torch.cat(xs)[:limit], torch.cat(ys)[:limit]


class TensorSplit(ImageSplit):
    """Images held in memory as uint8 (N, C, H, W); augmentation is a batched random crop and flip."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, info: DatasetInfo):
        self.images, self.labels, self.info = images, labels, info
        self._mean = torch.tensor(info.mean).view(1, -1, 1, 1)
        self._std = torch.tensor(info.std).view(1, -1, 1, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def batches(self, batch_size, device="cpu", shuffle=False, augment=False, generator=None):
        device = torch.device(device)
        mean, std = self._mean.to(device), self._std.to(device)
        order = torch.randperm(len(self), generator=generator) if shuffle else torch.arange(len(self))
        for start in range(0, len(self), batch_size):
            idx = order[start:start + batch_size]
            x = self.images[idx].to(device, non_blocking=True).float().div_(255)
            if augment:
                x = random_crop_flip(x, generator)
            yield (x - mean) / std, self.labels[idx].to(device, non_blocking=True)


def random_crop_flip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Per-image random crop (padding of 1/8 of the side) and horizontal flip, for a whole batch."""
    n, _, h, w = x.shape
    pad = max(1, h // 8)
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x.device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
    cols = torch.where(flip[:, None, None, None], cols.flip(-1), cols)
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    channel = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
    return padded[batch, channel, rows, cols]


class FolderSplit(ImageSplit):
    """A lazily read subset of a torchvision ImageFolder (ImageNet-style data)."""

    def __init__(self, folder: tvd.ImageFolder, indices: list[int] | None, info: DatasetInfo, workers: int = 2):
        self.folder, self.info, self.workers = folder, info, workers
        self.indices = list(range(len(folder))) if indices is None else list(indices)
        from torchvision import transforms as T

        normalize = T.Normalize(info.mean, info.std)
        self._eval = T.Compose([T.Resize(int(info.image_size * 8 / 7)), T.CenterCrop(info.image_size),
                                T.ToTensor(), normalize])
        self._train = T.Compose([T.RandomResizedCrop(info.image_size), T.RandomHorizontalFlip(),
                                 T.ToTensor(), normalize])

    def __len__(self) -> int:
        return len(self.indices)

    def batches(self, batch_size, device="cpu", shuffle=False, augment=False, generator=None):
        images = _Transformed(self.folder, self._train if augment else self._eval)
        loader = DataLoader(Subset(images, self.indices), batch_size=batch_size, shuffle=shuffle,
                            generator=generator, num_workers=self.workers)
        for x, y in loader:
            yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)


class _Transformed(Dataset):
    """An already scanned ImageFolder's samples under a transform (rescanning costs minutes on ImageNet)."""

    def __init__(self, folder: tvd.ImageFolder, transform):
        self.folder, self.transform = folder, transform

    def __len__(self) -> int:
        return len(self.folder.samples)

    def __getitem__(self, index: int):
        path, label = self.folder.samples[index]
        return self.transform(self.folder.loader(path)), label


@dataclass
class DataSplits:
    info: DatasetInfo
    train: ImageSplit
    calibration: ImageSplit
    reward: ImageSplit
    test: ImageSplit
    seed: int


# ---------------------------------------------------------------------------- readers

def read_idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format), gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise PruneGymError(f"{path}: not an unsigned-byte IDX file")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise PruneGymError(f"{path}: IDX header says {shape} but holds {body.size} bytes (truncated?)")
    return body.reshape(shape)


FASHION_FILES = {
    "train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte",
}


def _idx_files(directory: Path) -> dict[str, Path] | None:
    found = {}
    for key, stem in FASHION_FILES.items():
        candidates = [directory / f"{stem}.gz", directory / stem]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            return None
        found[key] = path
    return found


def _fashion_mnist_dirs(root: Path | None) -> list[Path]:
    if root is not None:
        return [root, root / "FashionMNIST" / "raw"]
    return [DEBIAN_FASHION_MNIST, home_dir() / "data" / "FashionMNIST" / "raw"]


def load_fashion_mnist(root: Path | None = None, download: bool = True) -> tuple[Batch, Batch, DatasetInfo]:
    """Fashion-MNIST from `root`, Debian's package, or the cache (downloaded there when online)."""
    dirs = _fashion_mnist_dirs(root)
    files = next((f for f in map(_idx_files, dirs) if f is not None), None)
    if files is None and root is None and download:
        try:
            from torchvision.datasets import FashionMNIST

            FashionMNIST(home_dir() / "data", download=True)
        except Exception as exc:  # any network failure means: not available
            download_error = f"; download failed ({type(exc).__name__}: {exc})"
        else:
            download_error = ""
        files = _idx_files(dirs[-1])
    else:
        download_error = ""
    if files is None:
        looked = ", ".join(str(d) for d in dirs)
        raise DataNotFoundError(
            f"Fashion-MNIST not found (looked in {looked}{download_error}); install Debian's package "
            "(apt-get install dataset-fashion-mnist) or pass a root holding train-images-idx3-ubyte.gz and "
            "the other three IDX files")
    arrays = {k: torch.from_numpy(read_idx(p).copy()) for k, p in files.items()}
    info = DatasetInfo("fashion-mnist", 1, 10, 28, (0.2860,), (0.3530,))
    train = (arrays["train_images"].unsqueeze(1), arrays["train_labels"].long())
    test = (arrays["test_images"].unsqueeze(1), arrays["test_labels"].long())
    return train, test, info


CIFAR_DIR = "cifar-10-batches-py"


def _read_cifar_batches(directory: Path, names: list[str]) -> Batch:
    images, labels = [], []
    for name in names:
        with open(directory / name, "rb") as f:
            batch = pickle.load(f, encoding="latin1")
        images.append(np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.extend(batch["labels"])
    return torch.from_numpy(np.concatenate(images)), torch.tensor(labels)


def load_cifar10(root: Path | None = None) -> tuple[Batch, Batch, DatasetInfo]:
    """CIFAR-10's python batches from root/cifar-10-batches-py (torchvision's layout).

    Read directly rather than through torchvision's CIFAR10, which refuses files whose MD5
    differs from the official ones.
    """
    directory = (root or home_dir() / "data") / CIFAR_DIR
    train_names = [f"data_batch_{i}" for i in range(1, 6)]
    missing = [n for n in train_names + ["test_batch"] if not (directory / n).is_file()]
    if missing:
        raise DataNotFoundError(
            f"CIFAR-10 not found: {directory} lacks {', '.join(missing)}; download the python version from "
            "https://www.cs.toronto.edu/~kriz/cifar.html and unpack it under the data root")
    info = DatasetInfo("cifar10", 3, 10, 32, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
    return _read_cifar_batches(directory, train_names), _read_cifar_batches(directory, ["test_batch"]), info


def _image_folder(root: Path | None) -> tuple[tvd.ImageFolder, tvd.ImageFolder]:
    if root is None:
        raise DataNotFoundError("the imagefolder data set needs a root holding train/ and val/ class folders")
    test_dir = next((root / d for d in ("val", "test") if (root / d).is_dir()), None)
    if not (root / "train").is_dir() or test_dir is None:
        raise DataNotFoundError(f"{root}: expected train/ and val/ (or test/) folders of class sub-folders")
    from torchvision.datasets import ImageFolder

    return ImageFolder(root / "train"), ImageFolder(test_dir)


DATASETS = ["fashion-mnist", "cifar10", "imagefolder"]


def dataset_names() -> list[str]:
    return list(DATASETS)


def check_dataset_name(name: str) -> None:
    """Refuse a data set name that is not registered, in one line that lists the ones that are."""
    if name not in DATASETS:
        raise UnknownNameError("data set", name, dataset_names())


def load_splits(name: str, root: str | Path | None = None, seed: int = 0, calibration_size: int = 2000,
                reward_size: int = 2000, download: bool = True) -> DataSplits:
    """Load a data set and split its training images, by `seed`, into train / calibration / reward."""
    check_dataset_name(name)
    root = Path(root).expanduser() if root is not None else None
    if root is not None and not root.exists():
        raise DataNotFoundError(f"data root {root} does not exist")
    if name == "imagefolder":
        train_folder, test_folder = _image_folder(root)
        info = DatasetInfo("imagefolder", 3, len(train_folder.classes), 224, IMAGENET_MEAN, IMAGENET_STD)
        n_train = len(train_folder)
    else:
        if name == "fashion-mnist":
            (train_x, train_y), (test_x, test_y), info = load_fashion_mnist(root, download)
        else:
            (train_x, train_y), (test_x, test_y), info = load_cifar10(root)
        n_train = len(train_y)
    if calibration_size < 1 or reward_size < 1 or calibration_size + reward_size >= n_train:
        raise PruneGymError(f"calibration ({calibration_size}) and reward ({reward_size}) splits must be positive "
                            f"and leave training images; {name} has {n_train}")
    order = torch.randperm(n_train, generator=torch.Generator().manual_seed(seed))
    parts = torch.split(order, [calibration_size, reward_size, n_train - calibration_size - reward_size])
    if name == "imagefolder":
        workers = min(4, os.cpu_count() or 1)
        cal, rew, train = (FolderSplit(train_folder, p.tolist(), info, workers) for p in parts)
        test = FolderSplit(test_folder, None, info, workers)
    else:
        cal, rew, train = (TensorSplit(train_x[p], train_y[p], info) for p in parts)
        test = TensorSplit(test_x, test_y, info)
    return DataSplits(info, train, cal, rew, test, seed)
