"""A run's trials as CSV, one row per trial, for spreadsheets and pandas."""

from __future__ import annotations

import csv
from typing import TextIO

from prune_gym.history.records import Run

TRIAL_COLUMNS = ("trial", "origin", "reward", "accuracy", "macs_ratio", "wall_time", "admitted")


def write_trials_csv(run: Run, stream: TextIO) -> None:
    """Trial columns, then one `action:<unit>` column per unit (the fraction of channels kept)."""
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow([*TRIAL_COLUMNS, *(f"action:{name}" for name in run.info.scenario.unit_names)])
    for t in range(run.n_trials):
        writer.writerow(
            [
                t,
                run.origins[t],
                float(run.rewards[t]),
                float(run.accuracies[t]),
                float(run.macs_ratios[t]),
                float(run.wall_times[t]),
                int(run.admitted[t]),
                *map(str, run.actions[t]),  # float32's shortest repr, not float64's
            ]
        )
