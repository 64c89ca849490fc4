"""Turning a device name from the user into a torch.device, with an error that says why not; and torch's CPU
threads in a forked process."""

from __future__ import annotations

import os

import torch

from prune_gym.errors import PruneGymError


def one_thread_after_fork() -> None:
    """A forked child runs torch with one CPU thread. The parent's OpenMP thread pool does not survive a fork,
    and a child whose torch would use it waits for it forever: Gymnasium's async vector env forks its workers
    after building an env in the parent, and hung so. One thread a worker is also what N workers on N cores
    want; a child that wants more says so (`torch.set_num_threads`), as the search processes do."""
    torch.set_num_threads(1)


os.register_at_fork(after_in_child=one_thread_after_fork)


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """'auto' picks CUDA when there is one; an unavailable or unknown device is refused at once."""
    if isinstance(name, torch.device):
        name = str(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise PruneGymError(f"unknown device {name!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise PruneGymError(f"device {name!r} requested but CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise PruneGymError(f"device {name!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    elif device.type != "cpu":
        raise PruneGymError(f"unsupported device {name!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'")
    return device


def device_kind(device: torch.device) -> str:
    """What a run's figures depend on: 'cpu', or 'cuda' with the GPU's name; recorded with every run,
    so that reports never compare runs made on different kinds of device."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type
