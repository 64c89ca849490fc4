"""One episode's pruning: select channels, remove them, refit the consumers.

Channels are chosen by the LASSO on each consumer's reconstruction error (He et al.),
computed once, on the original network, when the environment is built: the ranking of a
unit's channels is then fixed, and keeping n channels keeps its top n. An episode
therefore removes the channels *before* computing the producer's output, so no layer is
ever evaluated at full width over the calibration images, and the Gram matrices of the
refit only span the kept channels. The refit follows one of three modes:

* ``"pruned"`` (default): the consumer's inputs come from the network pruned so far,
  and it is refitted to reproduce the original network's output; at the end of a
  residual branch the target also absorbs the shortcut's drift (He et al., PocketFlow).
* ``"original"``: inputs and targets both come from the original network, so every
  Gram matrix is computed once when the environment is built.
* ``"magnitude"``: keep the filters with the largest L1 norm, no refit (for comparison).
"""

from __future__ import annotations

import copy
import math
import time
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import fx, nn

from prune_gym.calibration import LazyGraphRunner
from prune_gym.graph import Consumer, PruningGraph, Unit
from prune_gym.layers import input_columns, kind_of
from prune_gym.recalibration import batchnorm_layers
from prune_gym.reconstruction import add_bias_column, channel_gram, lasso_ranking, refit
from prune_gym.surgery import flat_weight, keep_unit_channels, set_flat_weight

MODES = ("pruned", "original", "magnitude")


@dataclass
class ConsumerTarget:
    """What a consumer should reproduce, at its sampled positions, from the original network.

    Lists hold one entry per chunk of calibration images (see `EpisodePruner`).
    """

    positions: list[torch.Tensor | None]  # (images, per image) flat output positions; None: a row per image
    output: list[torch.Tensor]  # (rows, out) the original consumer's output
    shortcut: list[torch.Tensor] | None = None  # (rows, out) the original shortcut, for the residual correction
    bn_scale: torch.Tensor | None = None  # (out,) the BatchNorm's multiplier between consumer and addition
    gram: torch.Tensor | None = None  # X^T X of the original inputs (kept only in "original" mode)
    cross: torch.Tensor | None = None  # X^T Y of the original inputs (likewise)


def _rows(x: torch.Tensor, module: nn.Module, positions: torch.Tensor | None) -> torch.Tensor:
    """The consumer's input as a design matrix (rows, columns), with a ones column for a bias."""
    rows = kind_of(module).rows(module, x, positions)
    return add_bias_column(rows) if module.bias is not None else rows


@dataclass
class Reconstruction:
    """What the environment computes once: consumer targets and each unit's channel ranking."""

    targets: dict[str, ConsumerTarget]  # by consumer node
    rankings: dict[int, torch.Tensor]  # by unit index: channels from most to least useful


@torch.no_grad()
def prepare_reconstruction(graph: PruningGraph, chunks: list[torch.Tensor], positions_per_image: int, mode: str,
                           generator: torch.Generator) -> Reconstruction:
    """Sample positions, record the original network's outputs there and rank every unit's channels."""
    if mode == "magnitude":
        return Reconstruction({}, {})
    runners = [LazyGraphRunner(graph.graph_module, chunk) for chunk in chunks]
    modules = dict(graph.graph_module.named_modules())
    targets, rankings = {}, {}
    for unit in graph.units:
        for consumer in unit.consumers:
            module = modules[consumer.module]
            kind = kind_of(module)
            residual = consumer.residual if mode == "pruned" else None
            target = ConsumerTarget([], [], [] if residual is not None else None)
            gram = cross = 0
            if residual is not None and residual.bn is not None:
                bn = modules[residual.bn]
                target.bn_scale = kind_of(bn).residual_scale(bn)
            for runner in runners:
                x_map = runner.value(consumer.input_node)  # before the consumer runs and it is forgotten
                y = runner.value(consumer.node)
                positions = kind.positions(module, y, positions_per_image, generator)
                target.positions.append(positions)
                target.output.append(kind.outputs(module, y, positions))
                if residual is not None:
                    target.shortcut.append(kind.outputs(module, runner.value(residual.shortcut), positions))
                x = _rows(x_map, module, positions)
                gram, cross = gram + x.T @ x, cross + x.T @ target.output[-1]
            target.gram, target.cross = gram, cross
            targets[consumer.node] = target
        rankings[unit.index] = rank_channels(unit, modules, targets)
        if mode == "pruned":  # the refit reads the pruned network's inputs instead
            for consumer in unit.consumers:
                targets[consumer.node].gram = targets[consumer.node].cross = None
    return Reconstruction(targets, rankings)


def rank_channels(unit: Unit, modules: dict[str, nn.Module], targets: dict[str, ConsumerTarget]) -> torch.Tensor:
    """The unit's channels along the LASSO path of its consumers' reconstruction error, most useful first."""
    m = v = None
    for consumer in unit.consumers:
        target = targets[consumer.node]
        module = modules[consumer.module]
        block = kind_of(module).columns_per_channel(module, consumer.block)
        offset, width = unit.parts.get(consumer.input_node, (0, unit.channels))
        n = width * block  # leaves out the bias column, if any
        mc, vc = channel_gram(flat_weight(module), target.gram[:n, :n], target.cross[:n], block)
        scale = torch.diagonal(mc).sum().clamp_min(1e-12)  # weigh consumers equally
        if m is None:
            m = mc.new_zeros(unit.channels, unit.channels)
            v = vc.new_zeros(unit.channels, *vc.shape[1:])
        m[offset:offset + width, offset:offset + width] += mc / scale
        v[offset:offset + width] += vc / scale
    return lasso_ranking(m, v).cpu()


def whole_groups(ranking: torch.Tensor, width: int) -> torch.Tensor:
    """A channel ranking as a ranking of whole groups of `width` channels (a grouped conv's), the groups
    ordered by their channels' mean rank: keeping a multiple of `width` keeps whole groups."""
    rank = torch.empty_like(ranking)
    rank[ranking] = torch.arange(len(ranking), device=ranking.device)
    groups = rank.reshape(-1, width).float().mean(1).argsort()
    return (groups[:, None] * width + torch.arange(width, device=ranking.device)).reshape(-1)


def proportional(ranking: torch.Tensor, atoms: tuple[int, ...]) -> torch.Tensor:
    """A channel ranking that keeps the same share of every part between consecutive `atoms`: keeping a
    multiple of (channels / the largest width dividing every part) keeps that share of each, in the order
    of the original ranking within it. A chunk or a padded shortcut then splits the kept channels where the
    slim network's code expects, and each layer's MACs follow the unit's kept fraction."""
    bounds = torch.tensor(atoms, device=ranking.device)
    widths = bounds.diff()
    rounds = math.gcd(*widths.tolist())  # each round takes width / rounds channels of every part
    part = torch.bucketize(ranking, bounds[1:], right=True)  # the part each ranked channel is in
    order_in_part = torch.empty_like(ranking)
    for p, width in enumerate(widths.tolist()):
        order_in_part[part == p] = torch.arange(width, device=ranking.device)
    round_taken = order_in_part // (widths[part] // rounds)
    return ranking[torch.argsort(round_taken * len(widths) + part, stable=True)]


class WorkingCopy:
    """A copy of the network whose prunable layers are put back from pristine copies for each episode.

    Deep-copying only the touched layers is much cheaper than deep-copying the GraphModule,
    which regenerates its code. Every BatchNorm layer counts as touched: an episode may measure its
    statistics again (`prune_gym.recalibration`).
    """

    def __init__(self, graph: PruningGraph):
        self.network: fx.GraphModule = copy.deepcopy(graph.graph_module)
        touched = {name for u in graph.units for name in (*u.producers, *u.members, *(c.module for c in u.consumers))}
        touched |= {name for name, _ in batchnorm_layers(graph.graph_module)}
        self._pristine = {name: copy.deepcopy(graph.graph_module.get_submodule(name)) for name in sorted(touched)}

    def restore(self) -> fx.GraphModule:
        for name, module in self._pristine.items():
            parent, _, attr = name.rpartition(".")
            setattr(self.network.get_submodule(parent), attr, copy.deepcopy(module))
        return self.network


class EpisodePruner:
    """Prunes the network, unit by unit in graph order; keeps a breakdown of where time goes.

    A consumer is refit once every layer before it in the graph has its final weights: just
    before the first unit that it, or a layer after it, produces is pruned (or at `finish`).
    A unit's consumers usually follow it at once; a residual stream's are spread over the
    network, and each is refit on the inputs the blocks before it really compute.

    The calibration images come in chunks, each with its own lazy runner, and the Gram
    matrices are summed over chunks: on a CPU, cache-sized batches run several times faster
    than one large batch.
    """

    def __init__(self, network: fx.GraphModule, reconstruction: Reconstruction, chunks: list[torch.Tensor],
                 mode: str):
        self.targets, self.rankings = reconstruction.targets, reconstruction.rankings
        self.mode = mode
        self.network = network
        self.modules = dict(network.named_modules())
        self.runners = [LazyGraphRunner(network, chunk) for chunk in chunks] if mode == "pruned" else []
        self.seconds = {"calibration": 0.0, "selection": 0.0, "refit": 0.0}
        self._kept_outputs: dict[str, torch.Tensor] = {}  # layers whose outputs a unit pruned: the kept ones
        self._cuda = next(network.parameters()).is_cuda
        self._order = {node.name: i for i, node in enumerate(network.graph.nodes)}
        self._module_order = {node.target: i for i, node in enumerate(network.graph.nodes) if node.op == "call_module"}
        self._pending: list[tuple[Consumer, torch.Tensor]] = []  # consumers to refit, with their kept inputs

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
        with self._timed("selection"):
            if self.mode == "magnitude":
                ranking = self._magnitude_ranking(unit)
            else:
                ranking = self.rankings[unit.index]
            if unit.atoms:
                ranking = proportional(ranking, unit.atoms)
            elif unit.granularity > 1:
                ranking = whole_groups(ranking, unit.granularity)
            index = ranking[:n_keep].sort().values
        self._refit_pending(before=self._module_order[unit.producer])
        with self._timed("refit"):
            self._remove(unit, index)
        if self.mode != "magnitude":
            self._pending += [(c, unit.part(c.input_node, index)) for c in unit.consumers]
        return index

    @torch.no_grad()
    def finish(self) -> None:
        """Refit the consumers still waiting: call after the last unit."""
        self._refit_pending(before=len(self._order))

    def _refit_pending(self, before: int) -> None:
        """Refit, in graph order, the waiting consumers at or before node number `before`."""
        ready = sorted((p for p in self._pending if self._order[p[0].node] <= before),
                       key=lambda p: self._order[p[0].node])
        self._pending = [p for p in self._pending if self._order[p[0].node] > before]
        for consumer, kept in ready:
            with self._timed("calibration"):
                gram, cross, has_bias = self._statistics(consumer, kept)
            with self._timed("refit"):
                solution = refit(gram, cross)  # (kept columns [+ bias], out)
                weight, bias = (solution[:-1], solution[-1]) if has_bias else (solution, None)
                set_flat_weight(self.modules[consumer.module], weight.T, bias)
                for runner in self.runners:
                    runner.forget_downstream((consumer.node,))

    def _magnitude_ranking(self, unit: Unit) -> torch.Tensor:
        """The unit's channels by the L1 norm of their filters in the first producer that writes them."""
        norms = torch.full((unit.channels,), float("nan"))
        for name in unit.producers:
            offset, width = unit.parts.get(name, (0, unit.channels))
            written = norms[offset:offset + width]
            written[:] = torch.where(written.isnan(), flat_weight(self.modules[name]).abs().sum(1).cpu(), written)
        return norms.nan_to_num(0.0).argsort(descending=True)

    def _statistics(self, consumer: Consumer, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """G = X^T X and B = X^T Y over the kept input channels' columns (and the bias column, if any)."""
        target = self.targets[consumer.node]
        module = self.modules[consumer.module]
        kind = kind_of(module)
        has_bias = module.bias is not None
        outputs = self._kept_outputs.get(consumer.module)  # its outputs were pruned first: fit those left
        if self.mode == "original":
            columns = input_columns(index, kind.columns_per_channel(module, consumer.block)).to(target.gram.device)
            if has_bias:
                columns = torch.cat([columns, torch.tensor([target.gram.shape[0] - 1], device=columns.device)])
            cross = target.cross[columns]
            return target.gram[columns][:, columns], cross if outputs is None else cross[:, outputs], has_bias
        gram = cross = 0
        for i, runner in enumerate(self.runners):  # the channels are already removed: X spans the kept ones
            x_map = runner.value(consumer.input_node)
            positions = target.positions[i]
            x = _rows(x_map, module, positions)
            y, bn_scale = target.output[i], target.bn_scale
            shortcut = None if target.shortcut is None else target.shortcut[i]
            if outputs is not None:
                kept = outputs.to(y.device)
                y = y[:, kept]
                shortcut = None if shortcut is None else shortcut[:, kept]
                bn_scale = None if bn_scale is None else bn_scale[kept]
            if shortcut is not None:
                drift = shortcut - kind.outputs(module, runner.value(consumer.residual.shortcut), positions)
                if bn_scale is not None:  # the addition happens after the BatchNorm: undo its scale
                    usable = bn_scale.abs() > 1e-3
                    drift = torch.where(usable, drift / torch.where(usable, bn_scale, 1.0), 0.0)
                y = y + drift
            gram, cross = gram + x.T @ x, cross + x.T @ y
        return gram, cross, has_bias

    def _remove(self, unit: Unit, index: torch.Tensor) -> None:
        keep_unit_channels(unit, self.modules, index)
        for name in unit.producers:  # a gate's producer may be refit later, as another unit's consumer
            self._kept_outputs[name] = unit.part(name, index)
        kept = {name: (unit.part(name, index), unit.width(name)) for name in unit.nodes}
        for runner in self.runners:
            runner.slice_channels(kept, unit.dim)
