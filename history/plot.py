"""Learning curves of runs as a PNG: raw accuracy per trial, its EMA (weight 0.5, the smoothing the
benchmarks judge convergence by), each run's best trial and the end of its warm-up, and the
uniform policy's accuracy when it is known: what the search bought over it at a glance. Each
trial is marked by who chose it, history (the assistant, the source's policies replayed) or
the searcher itself, so that a search drawing on history shows what history gave it."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from prune_gym.history.records import Run

FIGURE_SIZE_IN = (8.0, 5.0)
# Trial origins that history chose (`prune_gym.agents.recorder.Trial.origin`); the others are the searcher's.
FROM_HISTORY = ("assistant", "history")
DPI = 100


def ema(values: np.ndarray, weight: float = 0.5) -> np.ndarray:
    """Exponential moving average: s_0 = x_0, s_t = weight * s_(t-1) + (1 - weight) * x_t."""
    smoothed = np.empty(len(values), dtype=np.float64)
    for t, value in enumerate(values):
        smoothed[t] = value if t == 0 else weight * smoothed[t - 1] + (1.0 - weight) * value
    return smoothed


def plot_learning_curves(runs: Sequence[Run], out: Path, uniform_accuracy: float | None = None) -> None:
    """Write one figure with every run's curves, one colour per run, to the PNG `out`.

    `uniform_accuracy`: the uniform policy's accuracy in the runs' scenario, drawn as a line.
    """
    learning_curves_figure(runs, uniform_accuracy).savefig(out, format="png")


def learning_curves_figure(runs: Sequence[Run], uniform_accuracy: float | None = None) -> Figure:
    """The figure `plot_learning_curves` writes."""
    figure = Figure(figsize=FIGURE_SIZE_IN, dpi=DPI)
    FigureCanvasAgg(figure)  # a figure of its own, off pyplot's global state, rendered by Agg
    axes = figure.add_subplot()
    for index, run in enumerate(runs):
        colour = f"C{index % 10}"
        trials = np.arange(run.n_trials)
        info = run.info
        axes.plot(trials, run.accuracies, color=colour, linewidth=0.8, alpha=0.35)
        chosen = np.isin(run.origins, FROM_HISTORY)
        for mask, marker, who in ((chosen, "^", "history chose"), (~chosen, ".", "the searcher chose")):
            if mask.any():
                axes.plot(trials[mask], run.accuracies[mask], color=colour, marker=marker, linestyle="none",
                          markersize=5, alpha=0.6, label=f"{info.run_id}: {mask.sum()} trials {who}")
        axes.plot(
            trials, ema(run.accuracies), color=colour, linewidth=2.0, marker="o" if run.n_trials == 1 else None,
            label=f"{info.run_id}: {info.agent} {info.method}, {info.scenario.model}/{info.scenario.dataset}, "
                  f"p={info.scenario.target_ratio:g}",
        )
        if run.n_trials:
            best = run.best_trial()
            axes.plot([best], [run.accuracies[best]], color=colour, marker="*", markersize=14, linestyle="none",
                      markeredgecolor="black",
                      label=f"{info.run_id} best: {100 * run.accuracies[best]:.2f}% at trial {best}")
        warmup = int(info.settings.get("warmup") or 0)
        if 0 < warmup < run.n_trials:
            axes.axvline(warmup - 0.5, color=colour, linestyle=":", linewidth=1.2,
                         label=f"{info.run_id} warm-up ends ({warmup} trials)")
    if uniform_accuracy is not None:
        axes.axhline(uniform_accuracy, color="black", linestyle="--", linewidth=1.0,
                     label=f"uniform policy: {100 * uniform_accuracy:.2f}%")
    axes.set_xlabel("trial")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel("accuracy (thin: raw, thick: EMA 0.5)")
    axes.set_title("Learning curves")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize="small")
    return figure
