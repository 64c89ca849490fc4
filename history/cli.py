"""`prune-gym history ls | show RUN | plot RUN... | export RUN --csv | check | library`: look into a history file.

The file is `--history FILE` (or its old spelling `--file`), given before or after the action;
`library` lists the history library that ships with prune-gym, which every action reads with
`--history library`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from prune_gym.history.check import check_file
from prune_gym.history.errors import HistoryError
from prune_gym.history.export import write_trials_csv
from prune_gym.history.library import library_path, manifest
from prune_gym.history.plot import plot_learning_curves
from prune_gym.history.records import Run, RunInfo
from prune_gym.history.store import HistoryStore
from prune_gym.paths import home_dir


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "history", help="list, show, plot and export past pruning runs",
        description="Look into the history file of past pruning runs.",
    )
    help_text = "history file (default: $PRUNE_GYM_HOME/history.h5, else ~/.cache/prune-gym/history.h5)"
    parser.add_argument("--history", "--file", dest="history", type=Path, default=None, metavar="FILE",
                        help=help_text)
    # The same option after the action; SUPPRESS leaves the value given before it when it is absent here.
    file_option = argparse.ArgumentParser(add_help=False)
    file_option.add_argument("--history", "--file", dest="history", type=Path, default=argparse.SUPPRESS,
                             metavar="FILE", help=help_text)
    actions = parser.add_subparsers(dest="history_command", required=True, metavar="ACTION")

    ls = actions.add_parser("ls", help="a table of the runs", parents=[file_option])
    ls.set_defaults(func=_ls)

    check = actions.add_parser("check", help="verify every run's stored data; name each damaged run and dataset",
                               parents=[file_option])
    check.set_defaults(func=_check)

    show = actions.add_parser("show", help="a run's metadata and a summary of its trials", parents=[file_option])
    show.add_argument("run", help="run id, e.g. run-0001")
    show.add_argument("--trials", type=int, default=20, metavar="N", help="list the last N trials (default 20)")
    show.set_defaults(func=_show)

    plot = actions.add_parser("plot", help="learning curves of one or more runs as a PNG", parents=[file_option])
    plot.add_argument("runs", nargs="+", metavar="RUN")
    plot.add_argument("--out", type=Path, default=Path("learning-curves.png"),
                      help="PNG to write (default learning-curves.png)")
    plot.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    plot.set_defaults(func=_plot)

    library = actions.add_parser("library", help="what the history library that ships with prune-gym holds: its "
                                                 "runs by scenario and searcher")
    library.set_defaults(func=_library)

    export = actions.add_parser("export", help="a run's trials as CSV, one row per trial", parents=[file_option])
    export.add_argument("run")
    export.add_argument("--csv", action="store_true", required=True, help="write CSV (the one format so far)")
    export.add_argument("--out", type=Path, default=None, help="file to write (default: standard output)")
    export.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    export.set_defaults(func=_export)


LIBRARY = "library"  # the --history value that names the library that ships


def _path(args: argparse.Namespace) -> Path:
    if args.history == Path(LIBRARY):
        return library_path()
    return args.history or home_dir() / "history.h5"


def _library(args: argparse.Namespace) -> int:
    """The library's runs, a row per scenario, searcher and method."""
    path, about = library_path(), manifest()
    groups: dict[tuple, list[RunInfo]] = {}
    for info in HistoryStore(path).find_runs():
        s = info.scenario
        groups.setdefault((s.model, s.dataset, s.target_ratio, info.agent, info.method), []).append(info)
    rows = [[model, dataset, f"{ratio:g}", agent, method, str(len(infos)), str(sum(i.n_trials for i in infos)),
             f"{max(i.best_accuracy or 0 for i in infos):.4f}"]
            for (model, dataset, ratio, agent, method), infos in sorted(groups.items())]
    print(f"history library version {about['version']}: {about['runs']} finished runs, {about['trials']} trials "
          f"(read with --history {LIBRARY}; unpacked at {path})")
    print(_table(("MODEL", "DATASET", "P", "AGENT", "METHOD", "RUNS", "TRIALS", "BEST ACC"), rows))
    return 0


def _store(args: argparse.Namespace) -> HistoryStore:
    return HistoryStore(_path(args))


def _check(args: argparse.Namespace) -> int:
    """Exit status 0 when every stored dataset verifies, 1 when something is damaged."""
    report = check_file(_path(args))
    for line in report.lines():
        print(line)
    return 1 if report.damaged else 0


def _ls(args: argparse.Namespace) -> int:
    store = _store(args)
    infos = store.find_runs()
    if not infos:
        print(f"no runs in {store.path}")
        return 0
    rows = [_ls_row(info) for info in infos]
    print(_table(("RUN", "MODEL", "DATASET", "P", "AGENT", "METHOD", "SOURCE", "SEED", "STATUS", "TRIALS", "BEST ACC"),
                 rows))
    return 0


def _ls_row(info: RunInfo) -> list[str]:
    scenario = info.scenario
    best = "-" if info.best_accuracy is None else f"{info.best_accuracy:.4f}"
    return [info.run_id, scenario.model, scenario.dataset, f"{scenario.target_ratio:g}", info.agent, info.method,
            ", ".join(info.sources) or "-", str(info.seed), info.status, str(info.n_trials), best]


def _show(args: argparse.Namespace) -> int:
    run = _store(args).read_run(args.run)
    info, scenario = run.info, run.info.scenario
    fields = [
        ("run", info.run_id),
        ("status", info.status),
        ("model", scenario.model),
        ("dataset", scenario.dataset),
        ("checkpoint", scenario.checkpoint_digest),
        ("target ratio", f"{scenario.target_ratio:g}"),
        ("reward", scenario.reward),
        ("agent", info.agent),
        ("method", info.method),
        ("settings", json.dumps(info.settings, sort_keys=True)),
        ("seed", str(info.seed)),
        ("sources", ", ".join(info.sources) or "-"),
        ("started", info.start_time),
        ("ended", info.end_time or "-"),
        ("resumed", ", ".join(info.resume_times) or "-"),
        ("versions", ", ".join(f"{name} {version}" for name, version in sorted(info.versions.items()))),
        ("units", f"{scenario.n_units} ({', '.join(scenario.unit_names)})"),
        ("features", ", ".join(scenario.feature_names)),
        ("weights", ", ".join(info.weight_tags) or "-"),
        ("trials", _origin_counts(run)),
    ]
    if run.n_trials:
        best = run.best_trial()
        fields.append(("best trial", f"{best}: accuracy {run.accuracies[best]:.4f}, "
                                     f"MACs ratio {run.macs_ratios[best]:.4f}, reward {run.rewards[best]:.4f}"))
        fields.append(("best policy", " ".join(f"{a:.3f}" for a in run.best_policy())))
    width = max(len(name) for name, _ in fields)
    print("\n".join(f"{name:<{width}}  {value}" for name, value in fields))
    shown = range(max(0, run.n_trials - args.trials), run.n_trials)
    if shown:
        print(f"\nlast {len(shown)} of {run.n_trials} trials:")
        print(_table(("TRIAL", "ORIGIN", "REWARD", "ACCURACY", "MACS", "WALL S", "ADMITTED"),
                     [_trial_row(run, t) for t in shown]))
    return 0


def _origin_counts(run: Run) -> str:
    counts = Counter(run.origins.tolist())
    return f"{run.n_trials}" + (f" ({', '.join(f'{origin} {n}' for origin, n in counts.items())})" if counts else "")


def _trial_row(run: Run, t: int) -> list[str]:
    return [str(t), run.origins[t], f"{run.rewards[t]:.4f}", f"{run.accuracies[t]:.4f}",
            f"{run.macs_ratios[t]:.4f}", f"{run.wall_times[t]:.2f}", "yes" if run.admitted[t] else "no"]


def _plot(args: argparse.Namespace) -> int:
    _refuse_overwrite(args.out, args.force)
    store = _store(args)
    plot_learning_curves([store.read_run(run_id) for run_id in args.runs], args.out)
    print(f"wrote {args.out}")
    return 0


def _export(args: argparse.Namespace) -> int:
    run = _store(args).read_run(args.run)
    if args.out is None:
        write_trials_csv(run, sys.stdout)
        return 0
    _refuse_overwrite(args.out, args.force)
    with open(args.out, "w", newline="") as stream:
        write_trials_csv(run, stream)
    print(f"wrote {run.n_trials} trials to {args.out}", file=sys.stderr)
    return 0


def _refuse_overwrite(path: Path, force: bool) -> None:
    if path.exists() and not force:
        raise HistoryError(f"{path} already exists; pass --force to overwrite it")


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows)]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
                     for row in (header, *rows))
