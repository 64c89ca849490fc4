"""One episode's pruning: select channels, refit the consumers, remove the channels.

Three modes:
* ``"pruned"`` (default): the consumer's inputs come from the network pruned so far,
  and it is refitted to reproduce the original network's output; at the end of a
  residual branch the target also absorbs the shortcut's drift (He et al., PocketFlow).
* ``"original"``: inputs and targets both come from the original network, so every
  Gram matrix is computed once when the environment is built.
* ``"magnitude"``: keep the filters with the largest L1 norm, no refit (for comparison).
"""

from __future__ import annotations

import copy
import time
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import fx, nn

from prune_gym.calibration import LazyGraphRunner
from prune_gym.graph import Consumer, PruningGraph, Unit
from prune_gym.reconstruction import (add_bias_column, channel_gram, conv_outputs, conv_patches, lasso_ranking,
                                      refit, sample_positions)
from prune_gym.surgery import (flat_weight, input_columns, keep_input_channels, keep_output_channels,
                               set_flat_weight)

MODES = ("pruned", "original", "magnitude")


@dataclass
class ConsumerTarget:
    """What a consumer should reproduce, at its sampled positions, from the original network.

    Lists hold one entry per chunk of calibration images (see `EpisodePruner`).
    """

    positions: list[torch.Tensor | None]  # (images, per image) flat output positions; None for a linear layer
    output: list[torch.Tensor]  # (rows, out) the original consumer's output
    shortcut: list[torch.Tensor] | None = None  # (rows, out) the original shortcut, for the residual correction
    bn_scale: torch.Tensor | None = None  # (out,) the BatchNorm's multiplier between consumer and addition
    gram: torch.Tensor | None = None  # "original" mode: X^T X of the original inputs
    cross: torch.Tensor | None = None  # "original" mode: X^T Y


def _rows(x: torch.Tensor, module: nn.Module, positions: torch.Tensor | None, out_width: int) -> torch.Tensor:
    """The consumer's input as a design matrix (rows, columns), with a ones column for a bias."""
    rows = x.flatten(1) if positions is None else conv_patches(x, module, positions, out_width)
    return add_bias_column(rows) if module.bias is not None else rows


def _outputs(y: torch.Tensor, positions: torch.Tensor | None) -> torch.Tensor:
    return y if positions is None else conv_outputs(y, positions)


@torch.no_grad()
def compute_targets(graph: PruningGraph, chunks: list[torch.Tensor], positions_per_image: int, mode: str,
                    generator: torch.Generator) -> dict[str, ConsumerTarget]:
    """Sample positions and record the original network's outputs there, one consumer at a time."""
    if mode == "magnitude":
        return {}
    runners = [LazyGraphRunner(graph.graph_module, chunk) for chunk in chunks]
    modules = dict(graph.graph_module.named_modules())
    targets = {}
    for unit in graph.units:
        for consumer in unit.consumers:
            module = modules[consumer.module]
            residual = consumer.residual if mode == "pruned" else None
            target = ConsumerTarget([], [], [] if residual is not None else None)
            if residual is not None and residual.bn is not None:
                bn = modules[residual.bn]
                target.bn_scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            for runner in runners:
                y = runner.value(consumer.node)
                positions = None
                if y.dim() == 4:
                    positions = sample_positions(len(y), y.shape[2], y.shape[3], positions_per_image, generator)
                target.positions.append(positions)
                target.output.append(_outputs(y, positions))
                if residual is not None:
                    target.shortcut.append(_outputs(runner.value(residual.shortcut), positions))
                if mode == "original":
                    x = _rows(runner.value(consumer.input_node), module, positions, y.shape[-1])
                    gram, cross = x.T @ x, x.T @ target.output[-1]
                    target.gram = gram if target.gram is None else target.gram + gram
                    target.cross = cross if target.cross is None else target.cross + cross
            targets[consumer.node] = target
        for runner in runners:
            runner.release()
    return targets


class WorkingCopy:
    """A copy of the network whose prunable layers are put back from pristine copies for each episode.

    Deep-copying only the touched layers is much cheaper than deep-copying the GraphModule,
    which regenerates its code.
    """

    def __init__(self, graph: PruningGraph):
        self.network: fx.GraphModule = copy.deepcopy(graph.graph_module)
        touched = {name for u in graph.units for name in (u.producer, *u.members, *(c.module for c in u.consumers))}
        self._pristine = {name: copy.deepcopy(graph.graph_module.get_submodule(name)) for name in sorted(touched)}

    def restore(self) -> fx.GraphModule:
        for name, module in self._pristine.items():
            parent, _, attr = name.rpartition(".")
            setattr(self.network.get_submodule(parent), attr, copy.deepcopy(module))
        return self.network


class EpisodePruner:
    """Prunes the network, unit by unit in graph order; keeps a breakdown of where time goes.

    The calibration images come in chunks, each with its own lazy runner, and the Gram
    matrices are summed over chunks: on a CPU, cache-sized batches run several times faster
    than one large batch.
    """

    def __init__(self, network: fx.GraphModule, targets: dict[str, ConsumerTarget], chunks: list[torch.Tensor],
                 mode: str):
        self.targets = targets
        self.mode = mode
        self.network = network
        self.modules = dict(network.named_modules())
        self.runners = [LazyGraphRunner(network, chunk) for chunk in chunks] if mode == "pruned" else []
        self.seconds = {"calibration": 0.0, "selection": 0.0, "refit": 0.0}
        self._cuda = next(network.parameters()).is_cuda

    @contextmanager
    def _timed(self, key: str):
        if self._cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        yield
        if self._cuda:
            torch.cuda.synchronize()
        self.seconds[key] += time.perf_counter() - start

    @torch.no_grad()
    def prune(self, unit: Unit, n_keep: int) -> torch.Tensor:
        """Keep `n_keep` channels of `unit`; returns their indices (sorted)."""
        if self.mode == "magnitude":
            with self._timed("selection"):
                norms = flat_weight(self.modules[unit.producer]).abs().sum(1)
                index = norms.argsort(descending=True)[:n_keep].sort().values.cpu()
            with self._timed("refit"):
                self._remove(unit, index)
            return index
        with self._timed("calibration"):
            stats = [self._statistics(c) for c in unit.consumers]
        with self._timed("selection"):
            index = self._select(unit, n_keep, stats)
        with self._timed("refit"):
            self._remove(unit, index)
            for consumer, (gram, cross, has_bias) in zip(unit.consumers, stats):
                columns = input_columns(index, self._columns_per_channel(consumer)).to(gram.device)
                if has_bias:
                    columns = torch.cat([columns, torch.tensor([gram.shape[0] - 1], device=gram.device)])
                solution = refit(gram, cross, columns)  # (columns, out)
                weight, bias = (solution[:-1], solution[-1]) if has_bias else (solution, None)
                set_flat_weight(self.modules[consumer.module], weight.T, bias)
            for runner in self.runners:
                runner.forget_downstream(tuple(c.node for c in unit.consumers))
                runner.release()
        return index

    def _select(self, unit: Unit, n_keep: int, stats: list[tuple[torch.Tensor, torch.Tensor, bool]]) -> torch.Tensor:
        """The LASSO's choice of `n_keep` channels, over all of the unit's consumers."""
        if n_keep == unit.channels:
            return torch.arange(unit.channels)
        m = v = 0
        for consumer, (gram, cross, _) in zip(unit.consumers, stats):
            block = self._columns_per_channel(consumer)
            n = unit.channels * block  # leaves out the bias column, if any
            mc, vc = channel_gram(flat_weight(self.modules[consumer.module]), gram[:n, :n], cross[:n], block)
            scale = torch.diagonal(mc).sum().clamp_min(1e-12)  # weigh consumers equally
            m, v = m + mc / scale, v + vc / scale
        return lasso_ranking(m, v)[:n_keep].sort().values.cpu()

    def _statistics(self, consumer: Consumer) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """G = X^T X and B = X^T Y for the consumer, over all its input channels (before pruning)."""
        target = self.targets[consumer.node]
        module = self.modules[consumer.module]
        has_bias = module.bias is not None
        if self.mode == "original":
            return target.gram, target.cross, has_bias
        gram = cross = 0
        for i, runner in enumerate(self.runners):
            x_map = runner.value(consumer.input_node)
            positions = target.positions[i]
            x = _rows(x_map, module, positions, None if positions is None else self._out_width(consumer, x_map))
            y = target.output[i]
            if target.shortcut is not None:
                drift = target.shortcut[i] - _outputs(runner.value(consumer.residual.shortcut), positions)
                if target.bn_scale is not None:  # the addition happens after the BatchNorm: undo its scale
                    usable = target.bn_scale.abs() > 1e-3
                    drift = torch.where(usable, drift / torch.where(usable, target.bn_scale, 1.0), 0.0)
                y = y + drift
            gram, cross = gram + x.T @ x, cross + x.T @ y
        return gram, cross, has_bias

    def _columns_per_channel(self, consumer: Consumer) -> int:
        """Columns of the design matrix per input channel: kh * kw for a conv, the flattened block for a linear."""
        module = self.modules[consumer.module]
        return module.kernel_size[0] * module.kernel_size[1] if isinstance(module, nn.Conv2d) else consumer.block

    def _out_width(self, consumer: Consumer, x_map: torch.Tensor) -> int:
        conv = self.modules[consumer.module]
        w = x_map.shape[3]
        return (w + 2 * conv.padding[1] - conv.dilation[1] * (conv.kernel_size[1] - 1) - 1) // conv.stride[1] + 1

    def _remove(self, unit: Unit, index: torch.Tensor) -> None:
        for name in (unit.producer, *unit.members):
            keep_output_channels(self.modules[name], index)
        for consumer in unit.consumers:
            keep_input_channels(self.modules[consumer.module], index, consumer.block)
        for runner in self.runners:
            runner.slice_channels(unit.nodes, index, unit.channels)
