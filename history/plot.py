"""Learning curves of runs as a PNG: raw accuracy per trial, and its EMA (DESIGN.md section 6)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from prune_gym.history.records import Run

FIGURE_SIZE_IN = (8.0, 5.0)
DPI = 100


def ema(values: np.ndarray, weight: float = 0.5) -> np.ndarray:
    """Exponential moving average: s_0 = x_0, s_t = weight * s_(t-1) + (1 - weight) * x_t."""
    smoothed = np.empty(len(values), dtype=np.float64)
    for t, value in enumerate(values):
        smoothed[t] = value if t == 0 else weight * smoothed[t - 1] + (1.0 - weight) * value
    return smoothed


def plot_learning_curves(runs: Sequence[Run], out: Path) -> None:
    """Write one figure with every run's curves, one colour per run, to the PNG `out`."""
    figure = Figure(figsize=FIGURE_SIZE_IN, dpi=DPI)
    FigureCanvasAgg(figure)  # a figure of its own, off pyplot's global state, rendered by Agg
    axes = figure.add_subplot()
    for index, run in enumerate(runs):
        colour = f"C{index % 10}"
        trials = np.arange(run.n_trials)
        info = run.info
        axes.plot(trials, run.accuracies, color=colour, linewidth=0.8, alpha=0.35)
        axes.plot(
            trials, ema(run.accuracies), color=colour, linewidth=2.0, marker="o" if run.n_trials == 1 else None,
            label=f"{info.run_id}: {info.method}, {info.scenario.model}/{info.scenario.dataset}, p={info.scenario.target_ratio:g}",
        )
    axes.set_xlabel("trial")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel("accuracy (thin: raw, thick: EMA 0.5)")
    axes.set_title("Learning curves")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize="small")
    figure.savefig(out, format="png")
