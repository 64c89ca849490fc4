"""The arguments every command that builds a ChannelPrune-v0 scenario shares, declared once."""

from __future__ import annotations

import argparse
from typing import Any

from prune_gym.budgets import BUDGETS, DEFAULT_BUDGET
from prune_gym.datasets import dataset_names
from prune_gym.models import model_names


def ratio_type(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def add_scenario_arguments(p: argparse.ArgumentParser, ratio: bool = True) -> None:
    """The network, its data, the budget and p (`ratio` False: the command takes its own), the units, and where
    pruning runs."""
    p.add_argument("--model", default="resnet20", choices=model_names(), metavar="MODEL",
                   help=f"the network: {', '.join(model_names())} (default: resnet20)")
    p.add_argument("--dataset", default="fashion-mnist", choices=dataset_names(), metavar="DATASET",
                   help=f"its data set: {', '.join(dataset_names())} (default: fashion-mnist)")
    if ratio:
        p.add_argument("--ratio", type=ratio_type, required=True,
                       help="fraction of the budget's cost to keep (p), in (0, 1]")
    p.add_argument("--budget", default=DEFAULT_BUDGET, choices=list(BUDGETS),
                   help=f"what p is a fraction of (default: {DEFAULT_BUDGET})")
    p.add_argument("--round-to", type=positive_int, default=1, metavar="N",
                   help="keep each unit's channel count a multiple of N, a unit whose channels are not one whole "
                        "(default: 1, any count)")
    p.add_argument("--residual-streams", action="store_true",
                   help="make each residual stream a unit too (default: left whole, as AMC and PocketFlow do)")
    p.add_argument("--checkpoint", help="trained weights (default: the cached pretrained checkpoint, else the one that ships "
                                           "with prune-gym)")
    p.add_argument("--data-root", help="directory holding the data set (default: Debian's package or the cache)")
    p.add_argument("--device", default="auto", help="where pruning runs: auto, cpu, cuda or cuda:N")


def scenario_env_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The env options the scenario's arguments set, those at their defaults left out (so that default runs
    record the settings they always did)."""
    options: dict[str, Any] = {} if args.budget == DEFAULT_BUDGET else {"budget": args.budget}
    if args.residual_streams:
        options["residual_streams"] = True
    if args.round_to != 1:
        options["round_to"] = args.round_to
    return options
