"""Trials to converge by version 1's first-crossing rule (stated below), and the plot that shows them.

Version 2 (`quality.py`) keeps this module's smoothing, A* and first crossing, the last as a footnote.

For each method, the per-trial accuracies of its seeds are smoothed (EMA of weight 0.5)
and averaged. The baseline's converged accuracy A* is the mean of its curve over the last
20% of trials; a method converges at the first trial whose curve reaches A* - 0.5 points
(the trial budget if it never does); the speed-up is T_baseline / T_method.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from prune_gym.history.plot import ema

TOLERANCE = 0.005  # half a percentage point
CONVERGED_TAIL = 0.2  # the share of trials, at the end, that A* averages


def smoothed_mean(curves: list[np.ndarray]) -> np.ndarray:
    """The seeds' EMA-smoothed curves, averaged (over the trials all seeds have)."""
    n = min(len(c) for c in curves)
    return np.mean([ema(np.asarray(c[:n], dtype=np.float64)) for c in curves], axis=0)


def converged_accuracy(curve: np.ndarray) -> float:
    """A*: the mean of a smoothed curve over its last 20% of trials."""
    return float(curve[-max(1, round(CONVERGED_TAIL * len(curve))):].mean())


def first_reach(curve: np.ndarray, target: float) -> int | None:
    """The first trial (counted from 1) at which the curve reaches target - 0.5 points; None if never."""
    reached = np.flatnonzero(curve >= target - TOLERANCE)
    return int(reached[0]) + 1 if len(reached) else None


def trials_to_converge(curve: np.ndarray, target: float) -> int:
    """`first_reach`, or the curve's length (the whole budget) if never."""
    return first_reach(curve, target) or len(curve)


def plot_methods(curves: Mapping[str, list[np.ndarray]], target: float, title: str, out: Path) -> None:
    """Each method's smoothed accuracy per trial (mean of seeds, the seeds' range shaded), and A* - 0.5."""
    figure = Figure(figsize=(8.0, 5.0), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    draw_learning_curves(axes, curves, target)
    axes.legend(loc="lower right", fontsize="small")
    axes.set_title(title)
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out)


def draw_learning_curves(axes: Axes, curves: Mapping[str, list[np.ndarray]], target: float | None) -> None:
    """`plot_methods`'s curves on `axes` (no A* line when `target` is None), labelled for the caller's legend."""
    for method, seeds in curves.items():
        n = min(len(c) for c in seeds)
        smoothed = np.array([ema(np.asarray(c[:n], dtype=np.float64)) for c in seeds])
        trials = np.arange(1, n + 1)
        line, = axes.plot(trials, smoothed.mean(0), label=f"{method} ({len(seeds)} seeds)")
        axes.fill_between(trials, smoothed.min(0), smoothed.max(0), color=line.get_color(), alpha=0.2)
    if target is not None:
        axes.axhline(target - TOLERANCE, color="grey", linestyle="--", linewidth=1, label="baseline A* - 0.5 pp")
    axes.set(xlabel="trial", ylabel="reward-split accuracy (EMA 0.5)")
    axes.grid(alpha=0.3)
