"""Two studies' searches of the same scenarios side by side, from the committed data alone.

What a change of the env buys each searcher (the `streams` study makes the residual
streams units; the `league` leaves them whole), by version 2 of the rule: per scenario
and searcher found in both studies, the mean best-so-far b(T) of each at T = 30, 100, 300,
the difference with a 90% bootstrap interval over both studies' seeds and its verdict,
and the mean test-split accuracy of the best policies (those that hold b at the trials both
studies' runs have). A table holds one
device kind: the two studies' runs of a scenario must share it.

    .venv/bin/python benchmarks/compare.py streams league --into benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from prune_gym.benchmarks import quality
from prune_gym.benchmarks.data_export import DATA
from prune_gym.benchmarks.report import HEAD_TO_HEAD_BUDGETS, RunData, data_file, load_runs
from prune_gym.benchmarks.results_file import add_into_argument, compare_markers, print_or_write
from prune_gym.errors import PruneGymError


def from_scratch_runs(runs: list[RunData]) -> dict[tuple[str, float, str], list[RunData]]:
    """The from-scratch runs with default settings, by (model, ratio, searcher)."""
    groups: dict[tuple[str, float, str], list[RunData]] = {}
    for run in runs:
        if (run.source, run.method, run.agent_settings) == ("-", "baseline", "-"):
            groups.setdefault((run.model, run.ratio, run.agent), []).append(run)
    return groups


def compare(study: str, reference: str, data: Path = DATA) -> str:
    """A Markdown table of `study`'s searches against `reference`'s on their common scenarios and searchers."""
    mine, theirs = (from_scratch_runs(load_runs(data_file(data, name, f"run and export the {name} study first")))
                    for name in (study, reference))
    common = [key for key in mine if key in theirs]
    if not common:
        raise PruneGymError(f"{study} and {reference} share no scenario and searcher")
    lines = ["| scenario | searcher | seeds | "
             f"{' | '.join(f'b({t}): {study} - {reference}' for t in HEAD_TO_HEAD_BUDGETS)}"
             f" | test accuracy of the best policy: {study} / {reference} |",
             "|---|---|---|" + "---|" * (len(HEAD_TO_HEAD_BUDGETS) + 1)]
    for model, ratio, agent in common:
        runs, refs = mine[model, ratio, agent], theirs[model, ratio, agent]
        kinds = {r.device_kind for r in runs + refs}
        if len(kinds) > 1:
            raise PruneGymError(f"{model} {ratio} {agent}: runs made on {' and '.join(sorted(kinds))}; a table "
                                f"holds one device kind")
        curves, ref_curves = [r.accuracies for r in runs], [r.accuracies for r in refs]
        n = min(quality.common_length(curves), quality.common_length(ref_curves))
        means = (quality.mean_best_so_far(curves), quality.mean_best_so_far(ref_curves))
        cells = []
        for t in HEAD_TO_HEAD_BUDGETS:
            if t > n:
                cells.append("-")
                continue
            (diff, (low, high)) = difference = quality.difference_at(curves, ref_curves, t)
            cells.append(f"{100 * means[0][t - 1]:.2f} - {100 * means[1][t - 1]:.2f} = {100 * diff:+.2f} pp "
                         f"[{100 * low:+.2f}, {100 * high:+.2f}], {quality.verdict(difference)}")
        tests = [f"{100 * np.mean([r.test_of_best_so_far(n) for r in group]):.2f}%" for group in (runs, refs)]
        lines.append(f"| {model} {ratio} | {agent} | {len(runs)} / {len(refs)} | {' | '.join(cells)} | "
                     f"{' / '.join(tests)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", help="the study whose searches to measure (<study>-trials.csv.gz)")
    parser.add_argument("reference", help="the study they are set beside")
    parser.add_argument("--data", type=Path, default=DATA, help="where the compressed tables are")
    add_into_argument(parser)
    args = parser.parse_args()
    try:
        print_or_write(compare(args.study, args.reference, args.data), args.into,
                       compare_markers(args.study, args.reference))
    except PruneGymError as exc:
        parser.exit(2, f"compare: error: {exc}\n")


if __name__ == "__main__":
    main()
