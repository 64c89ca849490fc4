"""Issue 19's acceptance, from the committed data: every method of history on every transfer scenario.

One row per transfer scenario (a source model and ratio, a target model and ratio) and
method, from the transfer studies' data, in the order the studies declare them: the seeds,
the trials to the baseline's quality (the baseline's own in brackets), the speed-up with its
90% interval, the test-split guard at that trial, never worse (the lowest mean b(T) less the
baseline's over T >= 30) and whether it pays (at least 3x, the interval above 1.5x, the
guard held), which only an informative scenario can say. A row with fewer seeds than issue
19 asks (5 within a model, 3 across models) is provisional and left out of the count under
the table, which says for each method on how many scenarios it pays and is never worse; the
cells of the matrix with no data yet are listed. The numbers are `report.py`'s.

    .venv/bin/python benchmarks/matrix.py --into benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from prune_gym.agents.searchers import DEFAULT_SEARCHER
from prune_gym.benchmarks import quality
from prune_gym.benchmarks.data_export import DATA
from prune_gym.benchmarks.report import BASELINE, Row, Scenario, speed_up_text, study_scenarios
from prune_gym.benchmarks.results_file import add_into_argument, matrix_markers, print_or_write
from prune_gym.benchmarks.study import STUDIES, Transfer
from prune_gym.errors import PruneGymError

TRANSFER_STUDIES = ("transfer", "transfer-models")
METHODS = ("history", "vanilla", "augmented", "assistant")  # the default first, then the paper's
SEEDS_WITHIN_A_MODEL = 5  # issue 19's seeds for a transfer between ratios of one model
SEEDS_ACROSS_MODELS = 3  # ... and from one model to another
HEADER = ("scenario", "informative", "method", "seeds", "T_q (baseline's)", "speed-up [90%]", "guard at T_q",
          "never worse (lowest margin)", "pays")


@dataclass
class Tally:
    """One method's settled rows (enough seeds): how many pay, of how many informative, and how many are
    never worse."""

    pays: int = 0
    informative: int = 0
    never_worse: int = 0
    rows: int = 0
    provisional: int = 0


def _informative(scenario: Scenario) -> str:
    if scenario.informative is None:
        return "unknown"
    return f"{'yes' if scenario.informative else 'no'} ({100 * scenario.headroom:.2f} pp)"


def _row(transfer: Transfer, scenario: Scenario, method: str, row: Row, baseline: Row, tally: Tally) -> str:
    """The table's row of `method` on `transfer`, counted in its `tally` unless provisional."""
    wanted = SEEDS_WITHIN_A_MODEL if transfer.source_model == transfer.target_model else SEEDS_ACROSS_MODELS
    provisional = row.seeds < wanted
    paid = bool(scenario.informative) and quality.pays(row.speed_up, row.speed_up_interval, row.guard)
    kept = quality.never_worse(row.shortfall[0])
    speed = speed_up_text(row.speed_up, row.speed_up_interval)
    cells = [transfer.name, _informative(scenario), method,
             f"{row.seeds}{' (provisional)' if provisional else ''}",
             f"{row.t_q or 'never'} ({baseline.t_q or 'never'})", f"**{speed}**" if paid else speed,
             "-" if row.guard is None else f"{'held' if row.guard else 'NOT held'} ({100 * row.test_at_t_q:.2f}%)",
             f"{'holds' if kept else 'does not hold'} ({100 * row.shortfall[0]:+.2f} pp)",
             "-" if not scenario.informative else "**yes**" if paid else "no"]
    if provisional:
        tally.provisional += 1
    else:
        tally.rows += 1
        tally.never_worse += kept
        tally.informative += bool(scenario.informative)
        tally.pays += paid
    return "| " + " | ".join(cells) + " |"


def transfer_matrix(studies: Sequence[str] = TRANSFER_STUDIES, methods: Sequence[str] = METHODS,
                    data: Path = DATA) -> str:
    """The Markdown table of `methods` on every transfer scenario of `studies`, a line per method counting
    its settled rows, and the cells with no data yet."""
    lines = ["| " + " | ".join(HEADER) + " |", "|---" * len(HEADER) + "|"]
    tallies = {method: Tally() for method in methods}
    missing = []
    for study in studies:
        if study not in STUDIES or not STUDIES[study].transfers:
            raise PruneGymError(f"{study} is not a transfer study: "
                                f"{', '.join(name for name, s in STUDIES.items() if s.transfers)}")
        tables = {scenario.name: scenario for scenario in study_scenarios(study, data)}
        for transfer in STUDIES[study].transfers:
            scenario = tables.get(f"{transfer.target_model} {transfer.target_ratio}")
            rows = {row.label: row for row in scenario.rows if row.agent == DEFAULT_SEARCHER
                    and row.source == f"{transfer.source_model} {transfer.source_ratio}"} if scenario else {}
            baseline = next((row for row in scenario.rows if row.row_key == BASELINE), None) if scenario else None
            if rows and baseline is None:
                raise PruneGymError(f"{transfer.name}: the data hold transfers but no baseline to measure them "
                                    f"against; run and export the {STUDIES[study].reference or study} study's "
                                    f"baseline there")
            for method in methods:
                if method in rows:
                    lines.append(_row(transfer, scenario, method, rows[method], baseline, tallies[method]))
                else:
                    missing.append(f"{method} {transfer.name}")
    if len(lines) == 2:
        raise PruneGymError(f"the data of {', '.join(studies)} hold no transfer of {', '.join(methods)}")
    counts = [f"{method}: pays on {t.pays} of {t.informative} informative scenarios, never worse on "
              f"{t.never_worse} of {t.rows}" + (f" ({t.provisional} provisional not counted)" if t.provisional else "")
              for method, t in tallies.items() if t.rows or t.provisional]
    lines += ["", "; ".join(counts) + "."]
    if missing:
        lines += ["", f"Not in the data yet: {'; '.join(missing)}."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--studies", nargs="+", default=list(TRANSFER_STUDIES),
                        choices=[name for name, study in STUDIES.items() if study.transfers],
                        help="the transfer studies to read")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), help="the methods (or variants) to show")
    parser.add_argument("--data", type=Path, default=DATA, help="where the compressed tables are")
    add_into_argument(parser)
    args = parser.parse_args()
    if args.into and (args.studies, args.methods, args.data) != (list(TRANSFER_STUDIES), list(METHODS), DATA):
        parser.error("--into writes the block of `matrix.py` on its default studies, methods and data; print the "
                     "table of others instead")
    try:
        print_or_write(transfer_matrix(args.studies, args.methods, args.data), args.into, matrix_markers())
    except PruneGymError as exc:
        parser.exit(2, f"matrix: error: {exc}\n")


if __name__ == "__main__":
    main()
