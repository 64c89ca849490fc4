"""A sweep's trade-off curve as a PNG: test accuracy against MACs and against measured latency.

The searched models are joined into a curve, each labelled with its budget; the uniform policy's
models and Torch-Pruning's uniform pruning at the same budgets are drawn beside them, and the
original network as a star: whether a search paid, budget by budget, at a glance. The accuracy
axis spans the searched and uniform models; a model far below them (Torch-Pruning's, not refit,
often is) sits on its lower edge as a downward triangle labelled with its accuracy.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from prune_gym.sweep import Model, SweepPoint

FIGURE_SIZE_IN = (11.0, 4.5)
DPI = 100


def pareto_figure(points: Sequence[SweepPoint], original: Model, title: str = "") -> Figure:
    """Two panels, accuracy against MACs ratio and against batch-1 CPU latency, one series per kind of model."""
    figure = Figure(figsize=FIGURE_SIZE_IN, dpi=DPI)
    FigureCanvasAgg(figure)
    points = sorted(points, key=lambda p: p.ratio)
    series = [("searched policy", "C0", "o", "-", [p.searched for p in points]),
              ("uniform policy", "C1", "s", "--", [p.uniform for p in points]),
              ("Torch-Pruning uniform", "C2", "^", ":", [p.torch_pruning for p in points if p.torch_pruning])]
    shown = [100 * m.test_accuracy for m in (original, *series[0][4], *series[1][4])]
    floor = min(shown) - 0.1 * (max(shown) - min(shown)) - 1.0
    for index, (x_name, x_label) in enumerate((("macs_ratio", "MACs, fraction of the original's"),
                                               ("latency_ms", "latency at batch 1, ms (this CPU, one thread)"))):
        axes = figure.add_subplot(1, 2, index + 1)
        for name, colour, marker, style, models in series:
            if models:
                xs, ys = [getattr(m, x_name) for m in models], [100 * m.test_accuracy for m in models]
                axes.plot(xs, [max(y, floor) for y in ys], color=colour, marker=marker, linestyle=style, label=name)
                for x, y in zip(xs, ys):
                    if y < floor:
                        axes.plot([x], [floor], color=colour, marker="v", markersize=9, linestyle="none")
                        axes.annotate(f"{y:.1f}%", (x, floor), textcoords="offset points", xytext=(4, 4),
                                      fontsize="small", color=colour)
        for p in points:
            axes.annotate(f"p={p.ratio:g}", (getattr(p.searched, x_name), 100 * p.searched.test_accuracy),
                          textcoords="offset points", xytext=(4, 4), fontsize="small")
        axes.plot([getattr(original, x_name)], [100 * original.test_accuracy], color="black", marker="*",
                  markersize=12, linestyle="none", label="original")
        axes.set_ylim(bottom=floor - 0.5)
        axes.set_xlabel(x_label)
        axes.set_ylabel("test accuracy, %, before fine-tuning")
        axes.grid(alpha=0.3)
        axes.legend(loc="lower right", fontsize="small")
    figure.suptitle(title or "Accuracy against cost, one search per budget")
    figure.tight_layout()
    return figure


def plot_pareto(points: Sequence[SweepPoint], original: Model, out: Path, title: str = "") -> None:
    """Write `pareto_figure` to the PNG `out`."""
    pareto_figure(points, original, title).savefig(out, format="png")
