"""`prune-gym select-source`: race transfers from several stored runs, keep the best source, finish its search."""

from __future__ import annotations

import argparse
from pathlib import Path

from prune_gym.agents.config import TRANSFER_METHODS, SearchConfig
from prune_gym.agents.source_selection import MIN_TRIALS, RACE_TRIALS, WINDOW, select_source
from prune_gym.commands.search import positive_int, ratio_type
from prune_gym.datasets import dataset_names
from prune_gym.models import model_names
from prune_gym.paths import home_dir


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("select-source", help="pick the best source run for a transfer by racing them")
    p.add_argument("--candidates", nargs="+", required=True, metavar="RUN", help="finished runs to transfer from")
    p.add_argument("--model", default="resnet20", choices=model_names(), metavar="MODEL")
    p.add_argument("--dataset", default="fashion-mnist", choices=dataset_names(), metavar="DATASET")
    p.add_argument("--ratio", type=ratio_type, required=True, help="fraction of the MACs to keep (p), in (0, 1]")
    p.add_argument("--method", default="augmented", choices=list(TRANSFER_METHODS))
    p.add_argument("--trials", type=positive_int, default=300, help="the winner's episodes in all (default: 300)")
    p.add_argument("--race-trials", type=positive_int, default=RACE_TRIALS,
                   help=f"most episodes each candidate plays before the best one is kept (default: {RACE_TRIALS})")
    p.add_argument("--window", type=positive_int, default=WINDOW, help=f"smoothing window (default: {WINDOW})")
    p.add_argument("--min-trials", type=positive_int, default=MIN_TRIALS,
                   help=f"episodes every candidate plays before any is stopped (default: {MIN_TRIALS})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="where pruning runs: auto, cpu, cuda or cuda:N")
    p.add_argument("--checkpoint", help="trained weights (default: the cached pretrained checkpoint)")
    p.add_argument("--data-root")
    p.add_argument("--history", "--file", dest="history", default=None, metavar="FILE",
                   help="the library: HDF5 history holding the candidates (default: $PRUNE_GYM_HOME/history.h5)")
    p.add_argument("--backend", default="auto", choices=["auto", "ray", "processes"],
                   help="where the candidates run: Ray (the default when installed) or local processes")
    p.add_argument("--address", help="a Ray cluster to run on (default: $RAY_ADDRESS, else a local instance)")
    p.set_defaults(func=run_select_source_command)


def run_select_source_command(args: argparse.Namespace) -> int:
    config = SearchConfig(args.model, args.dataset, args.ratio, args.trials, args.method, args.seed, args.device,
                          checkpoint=args.checkpoint, data_root=args.data_root)
    library = Path(args.history) if args.history else home_dir() / "history.h5"
    selection = select_source(config, args.candidates, library, args.race_trials, args.window, args.min_trials,
                              backend=args.backend, address=args.address)
    print(f"source: {selection.winner} ({selection.reason})")
    for name, curve in selection.curves.items():
        print(f"  {name}: {len(curve)} trials, best {100 * curve.max():.2f}%")
    print(f"the search from {selection.winner} is run {selection.run_id} in {library}")
    return 0
