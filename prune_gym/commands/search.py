"""`prune-gym search`: run an auto-pruning search, record it, export the best policy's slim model."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import gymnasium as gym

from prune_gym.agents.assistant import ASSISTANT_SETTINGS
from prune_gym.agents.augmentation import RESCALES
from prune_gym.agents.config import SearchConfig
from prune_gym.agents.loop import make_env, resolve_search, run_search
from prune_gym.agents.methods import METHODS
from prune_gym.agents.presets import PRESETS, preset
from prune_gym.agents.presets.library import LIBRARY
from prune_gym.agents.searcher import parse_setting
from prune_gym.agents.searchers import (RECOMMENDED_ACROSS_NETWORKS, RECOMMENDED_SEARCHER, SEARCHERS,
                                        recommended_searcher)
from prune_gym.agents.source_choice import AUTO, Candidate, choose_sources
from prune_gym.agents.source_selection import MIN_TRIALS, RACE_TRIALS, select_source
from prune_gym.commands.export import print_speed
from prune_gym.commands.scenario import (add_scenario_arguments, non_negative_int, positive_int,
                                         scenario_env_kwargs)
from prune_gym.export import export_slim, measure_export
from prune_gym.history import HistoryError, HistoryStore
from prune_gym.history.library import library_path
from prune_gym.history.plot import plot_learning_curves
from prune_gym.onnx_export import require_onnx
from prune_gym.paths import home_dir
from prune_gym.policies import play, uniform_policy


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("search",
                              help="search for the best pruning policy with an RL agent or a black-box searcher")
    add_scenario_arguments(p)
    add_search_arguments(p)
    start = p.add_mutually_exclusive_group()
    start.add_argument("--source", metavar="RUN",
                       help="the history run a transfer method, a preset or the assistant starts from; 'auto' picks "
                            "the nearest usable runs of the history file by scenario and races them (default: the "
                            "nearest usable run of the history file, the --library files, then the library that "
                            "ships, by the library preset)")
    start.add_argument("--from-scratch", action="store_true",
                       help="search without drawing on any history (the default draws on it: --source)")
    p.add_argument("--history", "--file", dest="history", default=None, metavar="FILE",
                   help="HDF5 history file the search is recorded in (default: $PRUNE_GYM_HOME/history.h5)")
    p.add_argument("--library", action="append", default=[], type=Path, metavar="FILE",
                   help="another history file the default search may start from, after --history and before the "
                        "library that ships; repeatable")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run with these settings")
    p.add_argument("--out", help="directory for the best policy's slim model (default: runs/<run>)")
    p.add_argument("--onnx", action="store_true", help="also write the slim model as model.onnx, checked against torch")
    p.add_argument("--tensorboard", default="runs/tensorboard", help="TensorBoard log directory ('' to disable)")
    p.add_argument("--plot", help="write the learning curve to this PNG")
    p.set_defaults(func=run_search_command)


def add_search_arguments(p: argparse.ArgumentParser) -> None:
    """How a search runs: its length and seed, the searcher and its settings, what it takes from a source."""
    p.add_argument("--trials", type=positive_int, default=300, help="episodes to play (default: 300)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--agent", default=None, choices=list(SEARCHERS),
                   help=f"the searcher: {', '.join(SEARCHERS)} (default: the one the benchmarks recommend, "
                        f"{RECOMMENDED_SEARCHER}, or {RECOMMENDED_ACROSS_NETWORKS} when the search draws on another "
                        f"network's run; amc-ddpg is the paper's, AMC's DDPG)")
    p.add_argument("--agent-set", action="append", default=[], metavar="NAME=VALUE",
                   help="a setting of the searcher (e.g. sigma0=0.3, net_arch=64,64, spread=uniform), repeatable")
    p.add_argument("--warmup", type=non_negative_int, default=None,
                   help="trials of random fractions around p before the searcher acts itself (default: the "
                        "searcher's own from scratch, 100 for amc-ddpg; 0 when it starts from a source)")
    p.add_argument("--method", type=method_name, default=None, choices=list(METHODS),
                   help="what the search takes from --source: baseline (nothing, the default), vanilla (its network "
                        "weights), augmented (also its trials rewritten for this ratio: a preloaded replay buffer "
                        "and the invariant actor, or a black-box searcher's first policies), assistant (augmented, "
                        "the assistant acting in the first trials)")
    p.add_argument("--preset", default=None, choices=list(PRESETS),
                   help=f"a named set of settings over a method: {', '.join(PRESETS)} (history: the assistant with "
                        f"the fixes that paid; library: the same without the source's weights); your own settings "
                        f"override it")
    p.add_argument("--assistant", action="store_true",
                   help="let the assistant choose the first trials' actions from --source's trials (implied by "
                        "--method assistant)")
    p.add_argument("--assistant-set", action="append", default=[], metavar="NAME=VALUE",
                   help=f"a setting of the assistant ({', '.join(ASSISTANT_SETTINGS.defaults)}), repeatable; "
                        f"implies --assistant")
    p.add_argument("--rescale", default=None, choices=list(RESCALES),
                   help="how --source's policies are rewritten for this ratio: eq2 (the paper's Eq. 2, each unit's "
                        "pruned share scaled; the default), budget (the policy scaled as a whole to fill the budget) "
                        "or power (the fractions raised to ln p / ln p_source, then scaled so)")
    p.add_argument("--assistant-rescale", default=None, choices=list(RESCALES),
                   help="rewrite the assistant's records so instead (default: the preset's, else as --rescale)")


def method_name(text: str) -> str:
    """A `--method` value; a preset's name is refused with the flag that takes it."""
    if text in PRESETS:
        raise argparse.ArgumentTypeError(f"{text} is a preset, not a method: use --preset {text}")
    return text


def search_config(args: argparse.Namespace) -> SearchConfig:
    """The search the command-line arguments ask for (`add_scenario_arguments`, `add_search_arguments`)."""
    agent = args.agent or RECOMMENDED_SEARCHER
    agent_kwargs = dict(parse_setting(SEARCHERS[agent], text) for text in args.agent_set)
    assistant = None
    if args.assistant or args.assistant_set:
        assistant = dict(ASSISTANT_SETTINGS.parse(text) for text in args.assistant_set)
    return SearchConfig(args.model, args.dataset, args.ratio, args.trials, args.method, args.seed, args.device,
                        args.warmup, args.checkpoint, args.data_root, env_kwargs=scenario_env_kwargs(args),
                        agent_kwargs=agent_kwargs, source=getattr(args, "source", None), assistant=assistant,
                        agent=agent, rescale=args.rescale, assistant_rescale=args.assistant_rescale,
                        preset=preset(args.preset) if args.preset else None)


def run_search_command(args: argparse.Namespace) -> int:
    asked = search_config(args)
    history = Path(args.history) if args.history else home_dir() / "history.h5"
    race: list[str] = []
    library = None  # the file the source run is read from, when not `history`
    if asked.source == AUTO:
        asked, race = auto_source(asked, history)
    elif asked.source is None and not args.from_scratch and takes_nothing(asked):
        asked, library = draw_on_history(asked, history, args.library, choose_searcher=chooses_searcher(args))
    config = resolve_search(asked, library or history)  # bad settings are refused before any data is loaded
    if args.onnx:
        require_onnx()
    env = make_env(config)  # an unavailable device is refused here, before the search writes anything
    if race:
        selection = select_source(asked, race, history, race_trials=min(RACE_TRIALS, config.trials))
        print(f"source: {selection.winner} won the race ({selection.reason})")
        with HistoryStore(history) as store:
            run = store.read_run(selection.run_id)
        run_id, best_trial, best_policy = selection.run_id, run.best_trial(), run.best_policy().tolist()
    else:
        result = run_search(config, history, resume=args.resume, tensorboard_dir=args.tensorboard or None, env=env,
                            library=library)
        run_id, best_trial, best_policy = result.run_id, result.best_trial, result.best_policy
    info = play(env, best_policy)
    out = Path(args.out or Path("runs") / run_id)
    export_slim(env, out, info, source_run={"history": str(history.resolve()), "run_id": run_id})
    spec = measure_export(out, env.unwrapped.workload.model, env.unwrapped.device, args.onnx)
    print_policy(env, best_trial, info)
    print_speed(spec)
    print(f"history: {history} (run {run_id}); slim model: {out}")
    if args.plot:
        with HistoryStore(history) as store:
            uniform = play(env, uniform_policy(env.unwrapped.budget))["accuracy"]
            plot_learning_curves([store.read_run(run_id)], Path(args.plot), uniform_accuracy=uniform)
        print(f"learning curve: {args.plot}")
    return 0


def takes_nothing(config: SearchConfig) -> bool:
    """Whether the user asked for nothing from a source: no method, preset or assistant."""
    return config.method is None and config.preset is None and config.assistant is None


def chooses_searcher(args: argparse.Namespace) -> bool:
    """Whether the searcher is the command line's to choose: the user named none, nor any of its settings."""
    return args.agent is None and not args.agent_set


def draw_on_history(config: SearchConfig, history: Path, libraries: list[Path], users_first: bool = True,
                    choose_searcher: bool = False) -> tuple[SearchConfig, Path | None]:
    """The default search: `config` by the library preset from the nearest usable run of the user's files (the
    search's `history`, then its `libraries`, each read if it can be) or else of the library that ships, and
    the file that holds it; `config` itself when none has one. `users_first` False: the nearest of all files,
    the library's included (ties go to the user's). `choose_searcher`: the searcher recommended for that
    source (`recommended_searcher`). Says in one line what it took, or why nothing."""
    asked = dataclasses.replace(config, preset=LIBRARY, source=AUTO)
    found: list[tuple[Path, Candidate]] = []  # each file's nearest, in the order the files rank
    for path in [history, *libraries]:
        if path == history and not path.exists():
            continue  # the search's own history file, yet to be written
        try:
            if not path.exists():
                raise HistoryError("no such file")
            found += [(path, c) for c in choose_sources(path, asked, limit=1)]
        except HistoryError as exc:
            print(f"source: {path} left out: {exc}")
    if not found or not users_first:
        try:
            shipped = library_path()
            found += [(shipped, c) for c in choose_sources(shipped, asked, limit=1)]
        except HistoryError as exc:
            print(f"source: {exc}; searching without it")
    if not found:
        print(f"source: no run that a {config.model} search at p = {config.ratio:g} can start from; searching "
              f"from scratch")
        return config, None
    path, candidate = found[0] if users_first else min(found, key=lambda f: f[1].distance)
    agent = recommended_searcher(config.model, candidate.run.scenario.model) if choose_searcher else config.agent
    searcher = f", searching with {agent} (another network's run)" if agent != config.agent else ""
    print(f"source: starting from {candidate} of {path} by the {LIBRARY.name} preset{searcher} (--from-scratch: "
          f"without it)")
    return dataclasses.replace(config, preset=LIBRARY, source=candidate.run.run_id, agent=agent), path


def auto_source(config: SearchConfig, history: Path) -> tuple[SearchConfig, list[str]]:
    """`--source auto`: `config` with its source chosen from `history` (or, with none usable, a search from
    scratch), and the candidates to race when there are several; says in one line what it chose and why."""
    candidates = choose_sources(history, config)
    if not candidates:
        print(f"source: no run in {history} that {config.agent} can start a {config.label} search from; "
              f"searching from scratch")
        return dataclasses.replace(config, method="baseline", preset=None, source=None, assistant=None,
                                   assistant_rescale=None), []
    nearest = dataclasses.replace(config, source=candidates[0].run.run_id)
    if len(candidates) == 1 or not config.method_record.transfers or config.trials < MIN_TRIALS:
        print(f"source: {candidates[0]}, the nearest usable run")
        return nearest, []
    print(f"source: racing the {len(candidates)} nearest usable runs: {'; '.join(map(str, candidates))}")
    return nearest, [c.run.run_id for c in candidates]


def print_policy(env: gym.Env, best_trial: int, info: dict) -> None:
    units = env.unwrapped.units
    print(f"\nbest policy (trial {best_trial}):")
    print(f"{'unit':<24}{'channels':>10}{'kept':>8}{'fraction':>10}")
    for unit, kept in zip(units, info["kept_channels_per_unit"]):
        print(f"{unit.producer:<24}{unit.channels:>10}{kept:>8}{kept / unit.channels:>10.3f}")
    print(f"accuracy {100 * info['accuracy']:.2f}% on the reward split (unpruned "
          f"{100 * info['original_accuracy']:.2f}%), MACs ratio {info['macs_ratio']:.4f}, "
          f"params ratio {info['params_ratio']:.4f}")
