"""The latency budget: a network's time for one image, predicted from a per-layer table (AMC, NetAdapt).

Each conv and linear layer is timed alone, on the env's device at batch 1, for a grid of
kept input and output channel counts (`GRID` values per side the units control), with the
BatchNorms of the unit it produces; what is timed is each layer kind's `standin`, a fresh
module of the kept widths (`prune_gym.layers`). Between grid points the table interpolates
bilinearly, and it is made non-decreasing in each count so that the action wall's
bisection holds. What the layers do not explain (activations, additions, pooling, the
dispatch of each op) is the whole network's measured latency minus the layers' sum, kept
as a constant. The table is measured once per
network, input shape, device and thread count, and cached in $PRUNE_GYM_HOME/latency/.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Sequence

import numpy as np
import torch
from torch import nn

from prune_gym.budgets.base import Budget
from prune_gym.checkpoints import state_digest
from prune_gym.graph import Layer, PruningGraph
from prune_gym.layers import kind_of
from prune_gym.paths import home_dir
from prune_gym.speed import median_ms

GRID = 5  # channel counts measured per variable side of a layer
MIN_RUN_SECONDS = 0.02  # per timed configuration
TABLE_FORMAT = "prune-gym-latency/1"


class LatencyTable:
    """Per-layer latency (ms) over grids of kept channels, and the constant rest of the network."""

    def __init__(self, grids: list[tuple[list[int], list[int]]], values: list[list[list[float]]], rest_ms: float):
        self.grids = [(np.asarray(i, dtype=np.float64), np.asarray(o, dtype=np.float64)) for i, o in grids]
        # Non-decreasing along both counts: more channels never predict less time.
        self.values = [np.maximum.accumulate(np.maximum.accumulate(np.asarray(v, dtype=np.float64), 0), 1)
                       for v in values]
        self.rest_ms = rest_ms

    def layer_ms(self, layer: int, kept_in: float, kept_out: float) -> float:
        """Bilinear interpolation in the layer's grid (a fixed side has a single grid point)."""
        (grid_in, grid_out), table = self.grids[layer], self.values[layer]
        row = np.array([np.interp(kept_out, grid_out, table[i]) for i in range(len(grid_in))])
        return float(np.interp(kept_in, grid_in, row))

    def to_json(self) -> dict:
        return {"format": TABLE_FORMAT, "rest_ms": self.rest_ms,
                "grids": [[g[0].tolist(), g[1].tolist()] for g in self.grids],
                "values": [v.tolist() for v in self.values]}

    @classmethod
    def from_json(cls, data: dict) -> LatencyTable:
        return cls([tuple(g) for g in data["grids"]], data["values"], data["rest_ms"])


def _grid(low: int, high: int, step: int = 1) -> list[int]:
    """Kept counts to time, in whole groups of `step` channels (a grouped conv's)."""
    return sorted({int(round(c / step)) * step for c in np.linspace(low, high, GRID)})


@torch.no_grad()
def measure_table(graph: PruningGraph, min_channels: np.ndarray, device: torch.device,
                  min_run_seconds: float | None = None) -> LatencyTable:
    """Time every layer of `graph` alone over its grid of kept channels, and the whole network once
    (each configuration for `min_run_seconds`, by default `MIN_RUN_SECONDS`)."""
    min_run_seconds = min_run_seconds or MIN_RUN_SECONDS
    modules = dict(graph.graph_module.named_modules())
    inputs = {node.target: tuple(node.args[0].meta["tensor_meta"].shape) for node in graph.graph_module.graph.nodes
              if node.op == "call_module"}  # each module's input shape
    channels = [u.channels for u in graph.units]
    steps = [u.granularity for u in graph.units]
    grids, values = [], []
    for layer in graph.layers:
        module, shape = modules[layer.module], inputs[layer.module]
        full_in, full_out = kind_of(module).widths(module)
        # Grids count the unit's channels; the layer's width per unit channel is a flatten's block of columns,
        # or the share of the unit a part (a concatenation's input, a padded shortcut's) carries.
        (grid_in, in_scale), (grid_out, out_scale) = (
            ((_grid(min_channels[u], channels[u], steps[u]), full / channels[u]) if u is not None else ([full], 1.0))
            for u, full in ((layer.in_unit, full_in), (layer.out_unit, full_out)))
        table = [[_time_standin(module, shape, round(c_in * in_scale), round(c_out * out_scale), device,
                                min_run_seconds)
                  for c_out in grid_out] for c_in in grid_in]
        grids.append((grid_in, grid_out))
        values.append(table)
    _add_members(graph, modules, inputs, grids, values, device, min_run_seconds)
    network = graph.graph_module.to(device).eval()
    whole = median_ms(network, torch.zeros(1, *graph.input_shape, device=device), min_run_seconds)
    layers_full = sum(v[-1][-1] for v in values)
    return LatencyTable(grids, values, max(0.0, whole - layers_full))


def _add_members(graph: PruningGraph, modules: dict[str, nn.Module], shapes: dict[str, tuple[int, ...]],
                 grids: list, values: list, device: torch.device, min_run_seconds: float) -> None:
    """Add each unit's members that are not layers of their own (its BatchNorms), timed at their own inputs for
    the unit's counts, to its producer's table: they shrink with the unit (activations, which are not tracked
    per unit, stay in the constant rest)."""
    position = {layer.module: i for i, layer in enumerate(graph.layers)}
    for unit in graph.units:
        i = position[unit.producer]
        for member in unit.members:
            module = modules[member]
            if kind_of(module).counted:  # timed as a layer of its own
                continue
            for j, count in enumerate(grids[i][1]):
                width = count * unit.width(member) // unit.channels  # a part's share, if a part
                cost = _time_standin(module, shapes[member], width, width, device, min_run_seconds)
                for row in values[i]:
                    row[j] += cost


def _time_standin(module: nn.Module, shape: tuple[int, ...], c_in: int, c_out: int, device: torch.device,
                  min_run_seconds: float) -> float:
    """Median milliseconds of the module's stand-in with `c_in` inputs and `c_out` outputs, at batch 1; 0 for a
    module whose kind has none (its time stays in the constant rest)."""
    standin = kind_of(module).standin(module, shape, c_in, c_out)
    if standin is None:
        return 0.0
    layer, input_shape = standin
    return median_ms(layer.to(device), torch.zeros(input_shape, device=device), min_run_seconds)


def cached_table(graph: PruningGraph, min_channels: np.ndarray, device: torch.device) -> LatencyTable:
    """The graph's table from the cache, measured first if missing."""
    key = json.dumps({"weights": state_digest(graph.graph_module.state_dict()), "input": list(graph.input_shape),
                      "device": str(device), "name": torch.cuda.get_device_name(device) if device.type == "cuda"
                      else "cpu", "threads": torch.get_num_threads(), "torch": torch.__version__,
                      "min": min_channels.tolist(), "grid": GRID}, sort_keys=True)
    path = home_dir() / "latency" / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"
    if path.exists():
        return LatencyTable.from_json(json.loads(path.read_text()))
    table = measure_table(graph, min_channels, device)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(table.to_json()))
    os.replace(tmp, path)
    return table


class LatencyBudget(Budget):
    kind = "latency"

    def __init__(self, graph: PruningGraph, target_ratio: float, min_keep: float, device: torch.device | str = "cpu",
                 table: LatencyTable | None = None):
        super().__init__(graph, target_ratio, min_keep, device)
        self.table = table or cached_table(graph, self.min_channels, torch.device(device))
        self._full_ms = self._layer_ms(self.channels.astype(np.float64))  # each layer unpruned
        self._total = float(self._full_ms.sum()) + self.table.rest_ms
        self.check_reachable()

    @property
    def total(self) -> float:
        return self._total

    def _layer_ms(self, kept: np.ndarray) -> np.ndarray:
        return np.array([self.table.layer_ms(i, self._count(layer.in_unit, kept, 0, i),
                                             self._count(layer.out_unit, kept, 1, i))
                         for i, layer in enumerate(self.layers)])

    def _count(self, unit: int | None, kept: np.ndarray, side: int, layer: int) -> float:
        """The layer's channel count on one side: its unit's kept count, or the fixed full count."""
        return float(kept[unit]) if unit is not None else float(self.table.grids[layer][side][-1])

    def cost(self, kept: Sequence[int]) -> float:
        """Predicted milliseconds for one image with `kept` channels in each unit."""
        return float(self._layer_ms(np.asarray(kept, dtype=np.float64)).sum()) + self.table.rest_ms

    def unit_cost(self, unit: int) -> float:
        controls = [i for i, layer in enumerate(self.layers) if unit in (layer.in_unit, layer.out_unit)]
        return float(self._full_ms[controls].sum())

    def cost_after(self, unit: int) -> float:
        later = [i for i, layer in enumerate(self.layers) if max(_index(layer.in_unit), _index(layer.out_unit)) > unit]
        return float(self._full_ms[later].sum()) / self.total

    def floor_shares(self) -> list[tuple[Layer, float]]:
        shares = self._layer_ms(self.min_channels.astype(np.float64)) / self.total
        return [(self.layers[i], float(shares[i])) for i in np.argsort(-shares, kind="stable")]


def _index(unit: int | None) -> int:
    return -1 if unit is None else unit
