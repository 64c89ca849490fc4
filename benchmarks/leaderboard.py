"""The leaderboard: every entry of the league on every standard task, from committed data alone.

Its first entries are the league's searchers, every searcher of prune-gym from scratch (the
history library that ships holds their trials); each further entry is one data file in
benchmarks/data/leaderboard/, the one `prune-gym league --agent ...` writes, added by a pull
request. The tables go into RESULTS.md between their markers:

    .venv/bin/python benchmarks/leaderboard.py --into benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
from pathlib import Path

from prune_gym.benchmarks.data_export import DATA
from prune_gym.benchmarks.results_file import add_into_argument, leaderboard_markers, print_or_write
from prune_gym.league import format_standings, league_reference, read_entries, standings
from prune_gym.tasks import TASKS

ENTRIES = DATA / "leaderboard"


def leaderboard(entries: Path = ENTRIES) -> str:
    """Per task, the league's searchers and the committed entries, best first."""
    submitted = read_entries(sorted(entries.glob("*.csv.gz"))) if entries.is_dir() else {}
    blocks = []
    for task in TASKS.values():
        reference = league_reference(task)
        blocks.append(format_standings(task, reference, standings(reference, submitted.get(task.env_id))))
    return "\n\n".join(blocks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_into_argument(parser)
    print_or_write(leaderboard(), parser.parse_args().into, leaderboard_markers())


if __name__ == "__main__":
    main()
