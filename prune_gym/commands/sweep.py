"""`prune-gym sweep`: one search per MACs budget, each drawing on the nearest past run; the trade-off curve."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from prune_gym.agents.config import SearchConfig
from prune_gym.agents.loop import make_env, resolve_search, search_to_completion
from prune_gym.agents.presets.library import LIBRARY
from prune_gym.commands.scenario import add_scenario_arguments, ratio_type
from prune_gym.commands.search import (add_search_arguments, chooses_searcher, draw_on_history, search_config,
                                       takes_nothing)
from prune_gym.errors import PruneGymError
from prune_gym.pareto_plot import plot_pareto
from prune_gym.sweep import SweepState, budget_key, measure_original, measure_point, points_table


# What a sweep's budgets share, and a rerun into the same folder must too (the ratio is each budget's own).
SWEPT = ("model", "dataset", "trials", "seed", "agent", "agent_kwargs", "env_kwargs", "checkpoint", "method")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("sweep", help="search one policy per budget, each drawing on the nearest past run, "
                                            "and plot accuracy against MACs and latency")
    add_scenario_arguments(p, ratio=False)
    p.add_argument("--ratios", type=ratio_type, nargs="+", required=True, metavar="P",
                   help="the budgets p, searched in this order, each drawing on the nearest usable run: of the "
                        "sweep's earlier budgets, the --library files or the library that ships")
    add_search_arguments(p)
    p.add_argument("--from-scratch", action="store_true",
                   help="search each budget without drawing on any history, the sweep's own included")
    p.add_argument("--history", type=Path, default=None, metavar="FILE",
                   help="HDF5 history file the searches are recorded in (default: OUT/history.h5)")
    p.add_argument("--library", action="append", default=[], type=Path, metavar="FILE",
                   help="another history file the searches may start from (the nearest run of all files is taken); "
                        "repeatable")
    p.add_argument("--out", type=Path, default=Path("runs/sweep"),
                   help="folder for each budget's slim model (OUT/p0.3/...), the sweep's state and its plot "
                        "(default: runs/sweep)")
    p.add_argument("--plot", type=Path, default=None,
                   help="write the trade-off curve to this PNG (default: OUT/pareto.png)")
    p.set_defaults(func=run_sweep_command, ratio=None)


def run_sweep_command(args: argparse.Namespace) -> int:
    if len(set(args.ratios)) != len(args.ratios):
        raise PruneGymError(f"--ratios names a budget twice: {' '.join(f'{r:g}' for r in args.ratios)}")
    base = search_config(args)
    history = args.history or args.out / "history.h5"
    what = {k: v for k, v in dataclasses.asdict(base).items() if k in SWEPT}
    state = SweepState(args.out, what)
    for ratio in args.ratios:
        key = budget_key(ratio)
        if key in state.points:
            print(f"{key}: done in an earlier run of this sweep ({state.points[key].run_id})")
            continue
        config, library = planned_search(dataclasses.replace(base, ratio=ratio), state, history, args)
        print(f"{key}: searching {config.trials} trials")
        env = make_env(resolve_search(config, library or history))
        run_id = search_to_completion(config, history, library, progress=True, env=env)
        if state.original is None:
            state.original = measure_original(env)
        state.points[key] = measure_point(env, history, run_id, args.out / key)
        state.save()
    points = [state.points[budget_key(r)] for r in args.ratios]
    print(points_table(points, state.original))
    plot = args.plot or args.out / "pareto.png"
    plot_pareto(points, state.original, plot, f"{base.model} on {base.dataset}, {base.trials} trials per budget")
    print(f"history: {history}; slim models: {args.out}/p*/; trade-off curve: {plot}")
    return 0


def planned_search(asked: SearchConfig, state: SweepState, history: Path,
                   args: argparse.Namespace) -> tuple[SearchConfig, Path | None]:
    """The budget's search and the file its source is read from: as an earlier run of this sweep chose them
    (so that it resumes the same search), else chosen now, and kept: the nearest usable run of the sweep's
    history (its earlier budgets), the --library files and the library that ships, whichever file holds it."""
    key = budget_key(asked.ratio)
    planned = state.sources.get(key)
    if planned is not None:
        if planned["source"] is None:
            return asked, None
        print(f"{key}: starting from {planned['source']} of {planned['library']}, as this sweep chose before")
        return (dataclasses.replace(asked, preset=LIBRARY, source=planned["source"],
                                    agent=planned.get("agent", asked.agent)), Path(planned["library"]))
    chosen, library = (asked, None) if args.from_scratch or not takes_nothing(asked) else \
        draw_on_history(asked, history, args.library, users_first=False, choose_searcher=chooses_searcher(args))
    state.sources[key] = {"source": chosen.source if library else None, "library": str(library) if library else None,
                          "agent": chosen.agent}
    state.save()
    return chosen, library
