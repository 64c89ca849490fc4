"""The `prune-gym` command line. Each command module adds its own sub-parser.

User errors (`PruneGymError`) print one line and exit with status 2, like argparse's own.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from prune_gym.errors import PruneGymError

# Modules that define `add_parser(subparsers)`; the parser's `func(args)` runs the command.
COMMAND_MODULES = [
    "prune_gym.commands.workloads",
    "prune_gym.commands.export",
    "prune_gym.commands.finetune",
    "prune_gym.commands.search",
    "prune_gym.commands.sweep",
    "prune_gym.commands.select_source",
    "prune_gym.commands.league",
    "prune_gym.history.cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="prune-gym", description="RL-based channel auto-pruning of CNNs.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMAND_MODULES:
        importlib.import_module(module).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except PruneGymError as exc:
        print(f"prune-gym: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("prune-gym: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
