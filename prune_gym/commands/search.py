"""`prune-gym search`: run an auto-pruning search, record it, export the best policy's slim model."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
from pathlib import Path

import gymnasium as gym

from prune_gym.agents.assistant import Assistant
from prune_gym.agents.augmentation import RESCALES
from prune_gym.agents.config import (ASSISTED_METHODS, COMBINED_RESCALES, HISTORY_ASSISTANT, METHODS,
                                     POWER_FROM_LOG_RATIO, TRANSFER_METHODS, SearchConfig)
from prune_gym.agents.loop import make_env, run_search
from prune_gym.agents.searcher import parse_setting
from prune_gym.agents.searchers import DEFAULT_SEARCHER, SEARCHERS
from prune_gym.agents.source_choice import AUTO, choose_sources
from prune_gym.agents.source_selection import MIN_TRIALS, RACE_TRIALS, select_source
from prune_gym.budgets import BUDGETS, DEFAULT_BUDGET
from prune_gym.commands.export import print_speed
from prune_gym.datasets import dataset_names
from prune_gym.export import export_slim, measure_export
from prune_gym.history import HistoryStore
from prune_gym.history.plot import plot_learning_curves
from prune_gym.models import model_names
from prune_gym.onnx_export import require_onnx
from prune_gym.paths import home_dir
from prune_gym.policies import play, uniform_policy


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("search",
                              help="search for the best pruning policy with an RL agent or a black-box searcher")
    p.add_argument("--model", default="resnet20", choices=model_names(), metavar="MODEL")
    p.add_argument("--dataset", default="fashion-mnist", choices=dataset_names(), metavar="DATASET")
    p.add_argument("--ratio", type=ratio_type, required=True,
                   help="fraction of the budget's cost to keep (p), in (0, 1]")
    p.add_argument("--budget", default=DEFAULT_BUDGET, choices=list(BUDGETS),
                   help=f"what p is a fraction of (default: {DEFAULT_BUDGET})")
    p.add_argument("--residual-streams", action="store_true",
                   help="make each residual stream a unit too (default: left whole, as AMC and PocketFlow do)")
    p.add_argument("--trials", type=positive_int, default=300, help="episodes to play (default: 300)")
    p.add_argument("--agent", default=DEFAULT_SEARCHER, choices=list(SEARCHERS),
                   help=f"the searcher: {', '.join(SEARCHERS)} (default: {DEFAULT_SEARCHER}, AMC's DDPG)")
    p.add_argument("--agent-set", action="append", default=[], metavar="NAME=VALUE",
                   help="a setting of the searcher (e.g. sigma0=0.3, net_arch=64,64, spread=uniform), repeatable")
    p.add_argument("--warmup", type=non_negative_int, default=None,
                   help="trials of random fractions around p before the searcher acts itself (default: the "
                        "searcher's own, 100 for amc-ddpg, 0 for the transfer methods)")
    p.add_argument("--method", default="baseline", choices=list(METHODS),
                   help="baseline (from scratch); vanilla (start from --source's network weights); augmented "
                        "(also --source's trials rewritten for this ratio: the invariant actor and a preloaded "
                        "replay buffer, or a black-box searcher's first policies); assistant (augmented, with the "
                        "assistant acting in the first trials); history (the assistant with the fixes that paid: "
                        "source rewards re-based on this search's, a floor under the exploration noise, the "
                        f"assistant playing around this search's {HISTORY_ASSISTANT['incumbent']} best trials once "
                        "it has explored the records, handing over when the actor plays as well and keeping every "
                        f"other trial until trial {HISTORY_ASSISTANT['keep_until']}, from the source's policies "
                        "rewritten by --assistant-rescale budget, or power where ln p / ln p_source >= "
                        f"{POWER_FROM_LOG_RATIO})")
    p.add_argument("--source", metavar="RUN",
                   help="the history run a transfer method or the assistant starts from; 'auto' picks the nearest "
                        "usable runs of the history file by scenario and races them (none: a search from scratch)")
    p.add_argument("--assistant", action="store_true",
                   help="let the assistant choose the first trials' actions from --source's trials (implied by "
                        "--method assistant and history)")
    p.add_argument("--assistant-trials", type=positive_int, default=None, metavar="N",
                   help="trials the assistant acts in (default: 30); implies --assistant")
    p.add_argument("--assistant-set", type=assistant_setting, action="append", default=[], metavar="NAME=VALUE",
                   help="another assistant setting (explore_trials, top_n, sigma, omega, noise, batch, "
                        "admission_decay, handover=fixed|earned, incumbent=K, incumbent_noise, incumbent_window=N, "
                        "keep_until=T, turns=K, random_every=K), repeatable; implies --assistant")
    p.add_argument("--rescale", default="eq2", choices=list(RESCALES),
                   help="how --source's policies are rewritten for this ratio: eq2 (the paper's Eq. 2, each unit's "
                        "pruned share scaled), budget (the policy scaled as a whole to fill the budget) or power (the "
                        "fractions raised to ln p / ln p_source, then scaled so)")
    p.add_argument("--assistant-rescale", default=None, choices=[*RESCALES, *COMBINED_RESCALES],
                   help="rewrite the assistant's records so instead, or both by eq2 and budget (default: as --rescale; "
                        f"for --method history budget, or power where ln p / ln p_source >= {POWER_FROM_LOG_RATIO})")
    p.add_argument("--invariant-actor", action="store_true",
                   help="the actor predicts the invariant a / p (implied by --method augmented, assistant and history)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="where pruning runs: auto, cpu, cuda or cuda:N")
    p.add_argument("--checkpoint", help="trained weights (default: the cached pretrained checkpoint)")
    p.add_argument("--data-root")
    p.add_argument("--history", "--file", dest="history", default=None, metavar="FILE",
                   help="HDF5 history file (default: $PRUNE_GYM_HOME/history.h5)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted run with these settings")
    p.add_argument("--out", help="directory for the best policy's slim model (default: runs/<run>)")
    p.add_argument("--onnx", action="store_true", help="also write the slim model as model.onnx, checked against torch")
    p.add_argument("--tensorboard", default="runs/tensorboard", help="TensorBoard log directory ('' to disable)")
    p.add_argument("--plot", help="write the learning curve to this PNG")
    p.set_defaults(func=run_search_command)


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


def assistant_setting(text: str) -> tuple[str, float | str]:
    name, _, value = text.partition("=")
    parameters = inspect.signature(Assistant).parameters
    if name not in parameters or name in ("episodes", "seed", "trials", "ratio"):
        raise argparse.ArgumentTypeError(f"not an assistant setting: {name!r}")
    if isinstance(parameters[name].default, str):
        return name, value  # Assistant checks it
    try:
        return name, int(value) if value.isdigit() else float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{name} needs a number, got {value!r}") from None


def run_search_command(args: argparse.Namespace) -> int:
    assistant = None
    if args.assistant or args.assistant_trials or args.assistant_set or args.method in ASSISTED_METHODS:
        assistant = dict(args.assistant_set)
        if args.assistant_trials is not None:
            assistant["trials"] = args.assistant_trials
    agent_kwargs = dict(parse_setting(SEARCHERS[args.agent], text) for text in args.agent_set)
    if args.invariant_actor:
        agent_kwargs["invariant_actor"] = True
    env_kwargs = {} if args.budget == DEFAULT_BUDGET else {"budget": args.budget}  # default runs read as before
    if args.residual_streams:
        env_kwargs["residual_streams"] = True
    config = SearchConfig(args.model, args.dataset, args.ratio, args.trials, args.method, args.seed, args.device,
                          args.warmup, args.checkpoint, args.data_root, env_kwargs=env_kwargs, source=args.source,
                          assistant=assistant,
                          agent_kwargs=agent_kwargs, agent=args.agent, rescale=args.rescale,
                          assistant_rescale=args.assistant_rescale)
    config.validate()  # bad settings are refused before any data is loaded
    if args.onnx:
        require_onnx()
    history = Path(args.history) if args.history else home_dir() / "history.h5"
    env = make_env(config)  # an unavailable device is refused here, before any data is loaded
    race: list[str] = []
    if config.source == AUTO:
        config, race = auto_source(config, history)
    if race:
        selection = select_source(config, race, history, race_trials=min(RACE_TRIALS, config.trials))
        print(f"source: {selection.winner} won the race ({selection.reason})")
        with HistoryStore(history) as store:
            run = store.read_run(selection.run_id)
        run_id, best_trial, best_policy = selection.run_id, run.best_trial(), run.best_policy().tolist()
    else:
        result = run_search(config, history, resume=args.resume, tensorboard_dir=args.tensorboard or None, env=env)
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


def auto_source(config: SearchConfig, history: Path) -> tuple[SearchConfig, list[str]]:
    """`--source auto`: `config` with its source chosen from `history` (or, with none usable, a search from
    scratch), and the candidates to race when there are several; says in one line what it chose and why."""
    candidates = choose_sources(history, config)
    if not candidates:
        print(f"source: no run in {history} that {config.agent} can start a {config.method} search from; "
              f"searching from scratch")
        return dataclasses.replace(config, method="baseline", source=None, assistant=None), []
    nearest = dataclasses.replace(config, source=candidates[0].run.run_id)
    if len(candidates) == 1 or config.method not in TRANSFER_METHODS or config.trials < MIN_TRIALS:
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
