"""Checkpoints: pretrained weights with the metadata that says what they are.

A prune-gym checkpoint is a torch file holding a dict with `state_dict` and `metadata`
(architecture, data set, split, recipe, test accuracy, content digest). Users may also
bring a plain state dict, or a dict that holds one, with or without DataParallel's
`module.` prefix.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from prune_gym.errors import CheckpointError

STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "net")


def state_digest(state_dict: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over the names, shapes, dtypes and bytes of the tensors: identifies the weights."""
    h = hashlib.sha256()
    for key in sorted(state_dict):
        tensor = state_dict[key].detach().cpu().contiguous()
        h.update(f"{key}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        h.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def save_checkpoint(path: str | Path, model: nn.Module, metadata: dict[str, Any]) -> dict[str, Any]:
    """Write atomically (a crash leaves the old file or none, never half of one); returns the metadata."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    metadata = {**metadata, "digest": state_digest(state)}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save({"state_dict": state, "metadata": metadata}, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return metadata


def read_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The state dict and metadata (empty for a user's plain state dict) of a checkpoint file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a corrupt file
        raise CheckpointError(f"checkpoint {path} is corrupt or not a torch file ({type(exc).__name__})") from exc
    metadata: dict[str, Any] = {}
    if isinstance(obj, Mapping):
        metadata = dict(obj.get("metadata", {})) if isinstance(obj.get("metadata"), Mapping) else {}
        for key in STATE_DICT_KEYS:
            if isinstance(obj.get(key), Mapping):
                obj = obj[key]
                break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"checkpoint {path} holds no state dict (looked for a plain one and under "
                              f"{', '.join(STATE_DICT_KEYS)})")
    state = {k.removeprefix("module."): v for k, v in obj.items()}
    return state, metadata


def checkpoint_digest(path: str | Path) -> str:
    """The digest of a checkpoint's weights, as the history records it for every run that pruned them."""
    state, metadata = read_checkpoint(path)
    return metadata.get("digest") or state_digest(state)


def load_weights(model: nn.Module, path: str | Path) -> dict[str, Any]:
    """Load a checkpoint into `model`, refusing one made for another architecture; returns its metadata."""
    state, metadata = read_checkpoint(path)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
                  if k in state and state[k].shape != v.shape]
    if missing or unexpected or mismatched:
        problems = [f"{label}: {', '.join(keys[:5])}{' ...' if len(keys) > 5 else ''}"
                    for label, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                                        ("shape mismatch (checkpoint vs model)", mismatched)) if keys]
        raise CheckpointError(f"checkpoint {path} does not fit {type(model).__name__}: {'; '.join(problems)}")
    model.load_state_dict(state)
    return metadata
