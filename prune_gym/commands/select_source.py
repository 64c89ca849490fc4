"""`prune-gym select-source`: race transfers from several stored runs, keep the best source, finish its search."""

from __future__ import annotations

import argparse
from pathlib import Path

from prune_gym.agents.source_selection import MIN_TRIALS, RACE_TRIALS, WINDOW, select_source
from prune_gym.commands.scenario import add_scenario_arguments, positive_int
from prune_gym.commands.search import add_search_arguments, search_config
from prune_gym.paths import home_dir


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("select-source", help="pick the best source run for a transfer by racing them")
    p.add_argument("--candidates", nargs="+", required=True, metavar="RUN", help="finished runs to transfer from")
    add_scenario_arguments(p)
    add_search_arguments(p)
    p.add_argument("--race-trials", type=positive_int, default=RACE_TRIALS,
                   help=f"most episodes each candidate plays before the best one is kept (default: {RACE_TRIALS})")
    p.add_argument("--window", type=positive_int, default=WINDOW, help=f"smoothing window (default: {WINDOW})")
    p.add_argument("--min-trials", type=positive_int, default=MIN_TRIALS,
                   help=f"episodes every candidate plays before any is stopped (default: {MIN_TRIALS})")
    p.add_argument("--history", "--file", dest="history", default=None, metavar="FILE",
                   help="the library: HDF5 history holding the candidates (default: $PRUNE_GYM_HOME/history.h5)")
    p.add_argument("--backend", default="auto", choices=["auto", "ray", "processes"],
                   help="where the candidates run: Ray (the default when installed) or local processes")
    p.add_argument("--address", help="a Ray cluster to run on (default: $RAY_ADDRESS, else a local instance)")
    p.set_defaults(func=run_select_source_command)


def run_select_source_command(args: argparse.Namespace) -> int:
    if args.method is None and args.preset is None:
        args.method = "augmented"  # a race needs a method that transfers
    config = search_config(args)
    library = Path(args.history) if args.history else home_dir() / "history.h5"
    selection = select_source(config, args.candidates, library, args.race_trials, args.window, args.min_trials,
                              backend=args.backend, address=args.address)
    print(f"source: {selection.winner} ({selection.reason})")
    for name, curve in selection.curves.items():
        print(f"  {name}: {len(curve)} trials, best {100 * curve.max():.2f}%")
    print(f"the search from {selection.winner} is run {selection.run_id} in {library}")
    return 0
