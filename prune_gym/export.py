"""Exporting a pruned network: a physically slim state dict and a JSON spec of what was kept.

`load_slim` rebuilds a plain `nn.Module` (the zoo's class, or a user's module) with the
kept channel counts and loads the weights, so the result needs nothing from prune-gym's
environment to run.
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from prune_gym.errors import PruneGymError
from prune_gym.graph import discover_units
from prune_gym.models import build_model
from prune_gym.surgery import keep_unit_channels

SPEC_FORMAT = "prune-gym-slim/1"
# What later commands write beside an export; a new export into the directory removes them, being stale.
ONNX_FILE = "model.onnx"
FINETUNE_STATE_FILE = "finetune-state.pt"  # the resume point of an interrupted fine-tune
FINETUNED_FILE = "finetuned.pt"
FINETUNE_RESULT_FILE = "finetune.json"
DERIVED_FILES = (ONNX_FILE, FINETUNE_STATE_FILE, FINETUNED_FILE, FINETUNE_RESULT_FILE)


def export_slim(env, out_dir: str | Path, info: dict[str, Any] | None = None,
                source_run: dict[str, str] | None = None) -> Path:
    """Write `model.pt` and `spec.json` for the env's finished episode into `out_dir`; returns the spec's path.
    `source_run` ({"history": path, "run_id": id}) names the search the policy came from."""
    env = env.unwrapped
    indices = env.kept_indices
    if len(indices) != len(env.units):
        raise PruneGymError("export needs a finished episode: every unit must have been decided")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for derived in DERIVED_FILES:  # of an earlier export into the same directory
        (out / derived).unlink(missing_ok=True)
    workload = env.workload
    spec = {
        "format": SPEC_FORMAT,
        "model": workload.model_name,
        "dataset": workload.dataset,
        "build": workload.build_args,
        "input_shape": list(workload.input_shape),
        "leaf_modules": list(env.graph.leaf_modules),
        "residual_streams": env.graph.residual_streams,
        "checkpoint_digest": workload.digest,
        "target_ratio": env.target_ratio,
        "reconstruction": env.reconstruction,
        "units": [{"producer": u.producer, "channels": u.channels, "kept": len(i), "kept_indices": i.tolist()}
                  for u, i in zip(env.units, indices)],
        **{k: (info or {})[k] for k in ("accuracy", "macs", "macs_ratio", "params_ratio") if k in (info or {})},
        **({"source_run": source_run} if source_run else {}),
    }
    # Modules the traced network never runs (a training-only head, say) are kept from the original as they
    # were, so that a fresh instance of the architecture loads the file.
    original = workload.model.state_dict()
    pruned = {k: v for k, v in env.pruned_network.state_dict().items() if k in original}  # not fx's own constants
    state = OrderedDict((k, v.detach().cpu()) for k, v in {**original, **pruned}.items())
    state._metadata = original._metadata  # module versions, which some loaders read (MNASNet's)
    torch.save(state, out / "model.pt")
    _write_spec(out, spec)
    return out / "spec.json"


def measure_export(out_dir: str | Path, original: nn.Module, device: torch.device | str = "cpu",
                   onnx: bool = False, model: nn.Module | None = None) -> dict[str, Any]:
    """Measure the exported slim model against `original` on `device` (latency, throughput, parameters, MACs),
    optionally write and check `model.onnx`, and record both in the spec; returns the spec. `model` is a
    fresh instance of a user's own architecture, as `load_slim` takes it."""
    from prune_gym.onnx_export import export_onnx
    from prune_gym.speed import speed_report

    out = Path(out_dir)
    spec = read_spec(out)
    slim = load_slim(out, model)
    shape = tuple(spec["input_shape"])
    spec["speed"] = speed_report(slim, original, shape, device)
    if onnx:
        spec["onnx"] = export_onnx(slim, shape, out / ONNX_FILE)
    _write_spec(out, spec)
    return spec


def _write_spec(out: Path, spec: dict[str, Any]) -> None:
    tmp = out / "spec.json.tmp"
    tmp.write_text(json.dumps(spec, indent=2))
    os.replace(tmp, out / "spec.json")


def read_spec(path: str | Path) -> dict[str, Any]:
    """The spec of an export directory (or of its spec.json), refusing anything else."""
    path = Path(path)
    spec_path = path / "spec.json" if path.is_dir() else path
    if not spec_path.is_file():
        raise PruneGymError(f"{path} is not a slim export: no spec.json there")
    try:
        spec = json.loads(spec_path.read_text())
    except json.JSONDecodeError as exc:
        raise PruneGymError(f"{spec_path} is not a prune-gym slim-model spec: {exc}") from None
    if not isinstance(spec, dict) or spec.get("format") != SPEC_FORMAT:
        raise PruneGymError(f"{spec_path} is not a prune-gym slim-model spec")
    return spec


def load_slim(path: str | Path, model: nn.Module | None = None, weights: str = "model.pt") -> nn.Module:
    """The slim network described by an export directory (or its spec.json).

    Zoo models are rebuilt from the spec; for a user's own architecture, pass a freshly
    built `model` of that architecture and it is pruned to the spec's shapes. `weights` names
    the file in the directory to load: the export's `model.pt`, or `finetuned.pt` after
    `prune-gym finetune`.
    """
    path = Path(path)
    spec_path = path / "spec.json" if path.is_dir() else path
    spec = read_spec(spec_path)
    if model is None:
        if not spec.get("build"):
            raise PruneGymError(f"{spec_path} describes a user's model ({spec['model']}); pass model=")
        model = build_model(spec["model"], **spec["build"])
    graph = discover_units(model, tuple(spec["input_shape"]), spec.get("leaf_modules", ()),
                           spec.get("residual_streams", False))
    units = {u.producer: u for u in graph.units}
    modules = dict(model.named_modules())
    for entry in spec["units"]:
        unit = units.get(entry["producer"])
        if unit is None or unit.channels != entry["channels"]:
            raise PruneGymError(f"{spec_path}: unit {entry['producer']} does not match the model's units")
        kept = torch.tensor(entry["kept_indices"], dtype=torch.long)  # the shapes matter: weights are in model.pt
        keep_unit_channels(unit, modules, kept)
    if not (spec_path.parent / weights).is_file():
        raise PruneGymError(f"{spec_path.parent} has no {weights}")
    state = torch.load(spec_path.parent / weights, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return model.eval()
