"""`prune-gym tasks`, `league` and `validate`: the standard tasks, a searcher entered in the league, a policy checked."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from prune_gym.agents.config import SearchConfig
from prune_gym.agents.entry import load_searcher
from prune_gym.agents.loop import search_to_completion
from prune_gym.benchmarks.data_export import scored
from prune_gym.commands.scenario import positive_int
from prune_gym.errors import PruneGymError
from prune_gym.history import HistoryStore
from prune_gym.league import format_standings, league_reference, standings, write_entry
from prune_gym.surrogate import load_surrogate
from prune_gym.tasks import TASKS, make_task_env, task

LEAGUE_SEEDS = (0, 1, 2, 3, 4)  # the seeds every league searcher ran with
LEAGUE_TRIALS = 300


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("tasks", help="list the standard tasks and what the league holds on each")
    p.set_defaults(func=run_tasks_command)

    p = subparsers.add_parser("league", help="run a searcher on the standard tasks and see where it stands")
    p.add_argument("--agent", required=True, metavar="SPEC",
                   help="a registered searcher, FILE.py:CLASS or MODULE:CLASS (a Searcher subclass), or an SB3 "
                        "algorithm (stable_baselines3:A2C)")
    p.add_argument("--tasks", nargs="+", default=list(TASKS), metavar="ID", help="task ids (default: all)")
    p.add_argument("--seeds", nargs="+", type=int, default=list(LEAGUE_SEEDS),
                   help=f"searcher seeds (default: the league's, {' '.join(map(str, LEAGUE_SEEDS))})")
    p.add_argument("--trials", type=positive_int, default=LEAGUE_TRIALS,
                   help=f"trials a search (default: the league's {LEAGUE_TRIALS})")
    p.add_argument("--name", help="the entry's name in the table and its data file (default: the searcher's)")
    p.add_argument("--out", type=Path, default=Path("runs/league"),
                   help="where the searches are recorded (a rerun resumes them) and the entry's data file goes")
    p.add_argument("--device", default="auto", help="where pruning runs: auto, cpu, cuda or cuda:N")
    p.set_defaults(func=run_league_command)

    p = subparsers.add_parser("validate", help="play a policy on a task and confirm its MACs and accuracy")
    p.add_argument("policy", type=Path, metavar="POLICY_FILE",
                   help="the kept fraction of each unit: numbers separated by spaces or commas, a JSON list, or a "
                        "slim export's spec.json")
    p.add_argument("--task", required=True, metavar="ID", help=f"the task: {', '.join(TASKS)}")
    p.add_argument("--device", default="auto", help="where pruning runs: auto, cpu, cuda or cuda:N")
    p.set_defaults(func=run_validate_command)


def run_tasks_command(args: argparse.Namespace) -> int:
    for t in TASKS.values():
        reference = league_reference(t)
        held = ", ".join(f"{name} {100 * sum(c[:LEAGUE_TRIALS].max() for c in curves) / len(curves):.2f}% "
                         f"({len(curves)} seeds)" for name, curves in
                         sorted(reference.curves.items(), key=lambda kv: -sum(c.max() for c in kv[1]) / len(kv[1])))
        print(f"{t.env_id}\n  {t.label}; best known {100 * reference.best_known:.2f}%; mean best after "
              f"{LEAGUE_TRIALS} trials from scratch: {held}")
        fidelity = load_surrogate(t.model, t.dataset).meta["fidelity"].get(f"{t.ratio:g}")
        if fidelity:
            print(f"  surrogate twin {t.surrogate_id}: Spearman's rho {fidelity['spearman']:.3f} with the real "
                  f"accuracy on {fidelity['trials']} trials of runs it never saw ({fidelity['spearman_better_half']:.3f} "
                  f"on their better half)")
    return 0


def run_league_command(args: argparse.Namespace) -> int:
    searcher = load_searcher(args.agent)
    tasks = [task(t) for t in args.tasks]
    references = {t.env_id: league_reference(t) for t in tasks}  # a library without the league refused first
    name = args.name or searcher.name
    history = args.out / "history.h5"
    runs = {}
    for t in tasks:
        for seed in args.seeds:
            config = SearchConfig(t.model, t.dataset, t.ratio, args.trials, seed=seed, device=args.device,
                                  checkpoint=str(t.env_kwargs()["checkpoint"]), agent=searcher.name)
            print(f"{t.env_id}, seed {seed}: {args.trials} trials of {searcher.name}")
            run_id = search_to_completion(config, history, progress=True)
            with HistoryStore(history) as store:
                runs[t.env_id, seed] = store.read_run(run_id)
    entry_file = args.out / f"league-{name}.csv.gz"
    write_entry(entry_file, name, runs)
    for t in tasks:
        reference = references[t.env_id]
        row = name if name not in reference.curves else f"{name}, this entry"
        mine = {row: [runs[t.env_id, seed].accuracies for seed in args.seeds]}
        print("\n" + format_standings(t, reference, standings(reference, mine), mine=mine))
    print(f"\nthe entry's trials: {entry_file} (searches recorded in {history})")
    return 0


def read_policy(path: Path) -> list[float]:
    """A policy file's kept fractions (see `validate`'s help), or a one-line PruneGymError."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise PruneGymError(f"cannot read {path}: {exc.strerror}") from None
    try:
        if path.suffix == ".json":
            data = json.loads(text)
            if isinstance(data, dict) and "units" in data:  # a slim export's spec
                return [u["kept"] / u["channels"] for u in data["units"]]
            return [float(x) for x in data]
        return [float(x) for x in text.replace(",", " ").split()]
    except (ValueError, TypeError, KeyError) as exc:
        raise PruneGymError(f"{path} holds no policy (numbers, a JSON list or a spec.json): {exc}") from None


def run_validate_command(args: argparse.Namespace) -> int:
    t = task(args.task)
    policy = read_policy(args.policy)
    env = make_task_env(t.env_id, device=args.device)
    units = env.unwrapped.units
    if len(policy) != len(units):
        raise PruneGymError(f"{args.policy} has {len(policy)} fractions; {t.env_id} has {len(units)} units")
    asked = env.unwrapped.asked_ratio(policy)
    if asked > t.ratio + 1e-9:
        raise PruneGymError(f"{args.policy} is over budget: it keeps {asked:.4f} of the MACs; {t.env_id} allows "
                            f"{t.ratio:g}")
    reward, test, macs_ratio = scored(env, policy)
    print(f"valid on {t.env_id}: MACs ratio {macs_ratio:.4f} (at most {t.ratio:g}); accuracy {100 * reward:.2f}% on "
          f"the reward split, {100 * test:.2f}% on the test split")
    return 0
