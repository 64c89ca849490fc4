"""Issue 19's acceptance, from the committed data: every method of history on every transfer scenario.

One row per transfer scenario (a source model and ratio, a target model and ratio) and
method, from the transfer studies' data: the seeds, the trials to the baseline's quality
(the baseline's own in brackets), the speed-up with its 90% interval, the test-split guard
at that trial, never worse (the lowest mean b(T) less the baseline's over T >= 30) and
whether it pays (at least 3x, the interval above 1.5x, the guard held), which only an
informative scenario can say. Under the table, for each method, on how many scenarios it
pays and is never worse. The numbers are `report.py`'s; this is their summary across studies.

    .venv/bin/python benchmarks/matrix.py --into benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from prune_gym.agents.searchers import DEFAULT_SEARCHER
from prune_gym.benchmarks import quality
from prune_gym.benchmarks.convergence import TOLERANCE
from prune_gym.benchmarks.data_export import DATA
from prune_gym.benchmarks.report import BASELINE, Row, Scenario, study_scenarios
from prune_gym.benchmarks.results_file import matrix_markers, print_or_write
from prune_gym.benchmarks.study import STUDIES
from prune_gym.errors import PruneGymError

TRANSFER_STUDIES = ("transfer", "transfer-models")
METHODS = ("history", "vanilla", "augmented", "assistant")  # the default first, then the paper's


def _cells(scenario: Scenario, row: Row, baseline: Row) -> list[str]:
    speed = "never" if row.speed_up is None else f"{row.speed_up:.2f}x"
    if row.speed_up_interval is not None:
        speed += " [{:.2f}, {:.2f}]".format(*row.speed_up_interval)
    guard = "-" if row.guard is None else f"{'held' if row.guard else 'fails'} ({100 * row.test_at_t_q:.2f}%)"
    margin, _ = row.shortfall
    never_worse = f"{'holds' if margin >= -TOLERANCE else 'fails'} ({100 * margin:+.2f} pp)"
    paid = quality.pays(row.speed_up, row.speed_up_interval, row.guard)
    pays = "-" if not scenario.informative else "**yes**" if paid else "no"
    if paid and scenario.informative:
        speed = f"**{speed}**"
    return [str(row.seeds), f"{row.t_q or 'never'} ({baseline.t_q or 'never'})", speed, guard, never_worse, pays]


def transfer_matrix(studies: Sequence[str] = TRANSFER_STUDIES, methods: Sequence[str] = METHODS,
                    data: Path = DATA) -> str:
    """The Markdown table of `methods` on every transfer scenario of `studies`, and a line per method."""
    lines = ["| scenario | informative | method | seeds | T_q (baseline's) | speed-up [90%] | guard at T_q | "
             "never worse (lowest margin) | pays |", "|---" * 9 + "|"]
    tally = {method: {"pays": 0, "informative": 0, "never_worse": 0, "scenarios": 0} for method in methods}
    for study in studies:
        tables = {scenario.name: scenario for scenario in study_scenarios(study, data)}
        for transfer in STUDIES[study].transfers:  # in the order the study declares them
            scenario = tables.get(f"{transfer.target_model} {transfer.target_ratio}")
            if scenario is None:
                continue
            baseline = next((row for row in scenario.rows if row.row_key == BASELINE), None)
            source = f"{transfer.source_model} {transfer.source_ratio}"
            informative = "yes" if scenario.informative else "no"
            if scenario.headroom is not None:
                informative += f" ({100 * scenario.headroom:.2f} pp)"
            for method in methods:
                row = next((r for r in scenario.rows if r.shortfall is not None
                            and (r.source, r.label, r.agent) == (source, method, DEFAULT_SEARCHER)), None)
                if row is None or baseline is None:
                    continue
                lines.append(f"| {source} -> {scenario.name} | {informative} | {method} | "
                             + " | ".join(_cells(scenario, row, baseline)) + " |")
                counts = tally[method]
                counts["scenarios"] += 1
                counts["never_worse"] += row.shortfall[0] >= -TOLERANCE
                counts["informative"] += bool(scenario.informative)
                counts["pays"] += bool(scenario.informative) and quality.pays(row.speed_up, row.speed_up_interval,
                                                                               row.guard)
    if len(lines) == 2:
        raise PruneGymError(f"the data of {', '.join(studies)} hold no transfer of {', '.join(methods)}")
    lines += ["", "; ".join(f"{method}: pays on {c['pays']} of {c['informative']} informative scenarios, never worse "
                            f"on {c['never_worse']} of {c['scenarios']}" for method, c in tally.items()
                            if c["scenarios"]) + "."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", nargs="+", default=list(TRANSFER_STUDIES), help="the transfer studies to read")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), help="the methods (or variants) to show")
    parser.add_argument("--data", type=Path, default=DATA, help="where the compressed tables are")
    parser.add_argument("--into", type=Path, metavar="RESULTS",
                        help="write the table into this Markdown file, between its markers (e.g. "
                             "benchmarks/RESULTS.md), instead of printing it")
    args = parser.parse_args()
    try:
        print_or_write(transfer_matrix(args.studies, args.methods, args.data), args.into, matrix_markers())
    except PruneGymError as exc:
        parser.exit(2, f"matrix: error: {exc}\n")


if __name__ == "__main__":
    main()
