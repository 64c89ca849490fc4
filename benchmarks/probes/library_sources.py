"""Which past run serves another network's search best: the first trials from each candidate source.

The default search drawing on another network's run takes the nearest scenario's best-scoring
run (`choose_sources`). This starts the recommended search (TPE after the `library` preset's
assistant) on a target from the best run of each searcher at that scenario in turn, and from
all of them pooled into one run (the assistant's records, then, are every one of their
trials), leave-one-out as `library_study.py` measures the default: the library a target
draws on holds none of the target model's runs. The first `--trials` (30: the assistant's)
are what the source decides. `--assistant` sets the assistant over the preset: the preset races
another network's records shrunk and as they are (`shrink`, `shrink_race`), and `shrink=1.0`
plays them as they are, as the preset did before the race. Runs go to `--out`, resumed where
they stopped; every trial of the finished ones is added to
benchmarks/data/library-sources-trials.csv.gz, and `--report` prints each source's mean b(10)
and b(30) with every seed's, and the best searcher's from scratch (into RESULTS with `--into`).

    .venv/bin/python benchmarks/probes/library_sources.py --scenario mobilenet_v1:0.3 --source-ratio 0.3 \\
        --sources amc-ddpg:baseline tpe:baseline random:baseline amc-ddpg:history pooled --assistant shrink=1.0
    .venv/bin/python benchmarks/probes/library_sources.py --scenario mobilenet_v1:0.3 --source-ratio 0.3 \\
        --sources cmaes:baseline --assistant shrink=0.5 shrink_race=4
    .venv/bin/python benchmarks/probes/library_sources.py --report --into benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

import numpy as np

from prune_gym.agents.config import SearchConfig
from prune_gym.agents.loop import resolve_search, search_to_completion
from prune_gym.agents.presets.library import LIBRARY
from prune_gym.benchmarks.data_export import (DATA, TRIAL_COLUMNS, finished_run, held_trials, policy_text,
                                              write_csv_gz)
from prune_gym.benchmarks.library_study import DATASET, HOME_MODEL, from_scratch, leave_one_out_library
from prune_gym.benchmarks.report import load_runs
from prune_gym.benchmarks.results_file import add_into_argument, library_sources_markers, print_or_write
from prune_gym.benchmarks.study import committed_checkpoint
from prune_gym.cluster import open_backend
from prune_gym.history import HistoryStore, RunInfo

STUDY = "library-sources"
POOLED = "pooled"
SEARCHER = "tpe"  # the command line's searcher for another network's source
BUDGETS = (10, 30)


def best_runs(library: Path, source_ratio: float) -> dict[str, RunInfo]:
    """The best-scoring run of each searcher and method at the home model's `source_ratio`, by "agent:method"."""
    with HistoryStore(library) as store:
        runs = [r for r in store.find_runs(status="finished")
                if r.scenario.model == HOME_MODEL and r.scenario.target_ratio == source_ratio]
    best: dict[str, RunInfo] = {}
    for run in runs:
        key = f"{run.agent}:{run.method}"
        if key not in best or (run.best_accuracy or 0) > (best[key].best_accuracy or 0):
            best[key] = run
    return best


def pooled_library(library: Path, source_ratio: float, out: Path) -> tuple[Path, str]:
    """A copy of `library` with one more run holding every trial of `best_runs`, and that run's id (made once)."""
    path = out / f"pooled-{library.name}"
    if not path.exists():
        part = path.with_suffix(".part")
        shutil.copy(library, part)
        with HistoryStore(part, "a") as store:
            runs = [store.read_run(r.run_id) for r in best_runs(library, source_ratio).values()]
            writer = store.start_run(runs[0].info.scenario, "baseline", runs[0].info.settings, 0)
            for run in runs:
                for t in range(run.n_trials):
                    writer.append_trial(run.observations[t], run.actions[t], float(run.rewards[t]),
                                        float(run.accuracies[t]), float(run.macs_ratios[t]), "searcher", 0.0)
            writer.finish()
        part.rename(path)
    with HistoryStore(path) as store:
        return path, store.find_runs(status="finished")[-1].run_id


def shrink_race(config: SearchConfig, library: Path) -> tuple[float, int] | None:
    """(shrink, race trials) of the shrink race the search's assistant runs, or None if it plays the records as
    they are."""
    assistant = resolve_search(config, library).assistant
    return (assistant["shrink"], assistant["shrink_race"]) if assistant.get("shrink", 1.0) < 1 else None


def plans(model: str, ratio: float, source_ratio: float, sources: list[str], seeds: list[int], trials: int,
          out: Path, assistant: dict | None = None) -> list[tuple[str, int, SearchConfig, Path, Path]]:
    """(source, seed, config, history file, library) of every search; `assistant`: settings over the preset's."""
    library = leave_one_out_library(model, ratio, Path("runs/library"))
    best = best_runs(library, source_ratio)
    found = []
    for source in sources:
        source_library, run_id = (pooled_library(library, source_ratio, out) if source == POOLED
                                  else (library, best[source].run_id))
        for seed in seeds:
            config = SearchConfig(model, DATASET, ratio, trials, seed=seed, device="cpu", agent=SEARCHER,
                                  checkpoint=str(committed_checkpoint(model, DATASET)), preset=LIBRARY,
                                  source=run_id, assistant=assistant)
            race = shrink_race(config, source_library)
            tag = f"-shrink{race[0]:g}-race{race[1]}" if race else ""
            history = out / f"{model}-p{ratio}-from-{source.replace(':', '-')}{tag}-seed{seed}.h5"
            found.append((source, seed, config, history, source_library))
    return found


def export(found: list[tuple[str, int, SearchConfig, Path, Path]], source_ratio: float,
           data: Path = DATA) -> Path:
    """Every trial of the finished searches added to `data`/library-sources-trials.csv.gz (jobs held kept)."""
    path = data / f"{STUDY}-trials.csv.gz"
    rows, held = held_trials(path)
    for source, seed, config, history, library in found:
        run = None if history.stem in held else finished_run(history)
        if run is None:
            continue
        race = shrink_race(config, library)
        label = f"{HOME_MODEL} {source_ratio:g} {source}" + (f", raced shrunk by {race[0]:g} over {race[1]} trials"
                                                              if race else "")
        fields = [STUDY, history.stem, config.model, config.ratio, label, "library", SEARCHER, "-", seed, "cpu"]
        rows += [[*fields, t, f"{run.accuracies[t]:.6f}", f"{run.macs_ratios[t]:.6f}", run.origins[t],
                  f"{run.wall_times[t]:.3f}", "", policy_text(run.actions[t])] for t in range(run.n_trials)]
    write_csv_gz(path, TRIAL_COLUMNS, rows)
    return path


def report(data: Path = DATA) -> str:
    """Per target and source: the mean b(10) and b(30), each seed's b(30), and the best from scratch."""
    by_source: dict[tuple[str, float, str], list[np.ndarray]] = {}
    for run in load_runs(data / f"{STUDY}-trials.csv.gz"):
        by_source.setdefault((run.model, run.ratio, run.source), []).append(run.accuracies)
    scratch = from_scratch(data)
    lines = ["| target | source (best run of) | seeds | b(10) | b(30) | each seed's b(30) |", "|---|---|---|---|---|---|"]
    for model, ratio in sorted({(m, p) for m, p, _ in by_source}):
        rivals = {a: [r.accuracies for r in runs] for (m, p, a), runs in scratch.items() if (m, p) == (model, ratio)}
        for t in BUDGETS:
            agent = max(rivals, key=lambda a: np.mean([max(c[:t]) for c in rivals[a]]))
            b = [100 * max(c[:t]) for c in rivals[agent]]
            cells = [f"{np.mean(b):.2f}%" if u == t else "-" for u in BUDGETS]
            lines.append(f"| {model} {ratio:g} | none: {agent} from scratch, the best at {t} trials | {len(b)} | "
                         f"{' | '.join(cells)} | {', '.join(f'{v:.2f}' for v in b) if t == 30 else '-'} |")
        for (m, p, source), curves in sorted(by_source.items(), key=lambda kv: -np.mean([max(c[:30]) for c in kv[1]])):
            if (m, p) != (model, ratio):
                continue
            b = {t: [100 * max(c[:t]) for c in curves] for t in BUDGETS}
            lines.append(f"| {model} {ratio:g} | {source} | {len(curves)} | {np.mean(b[10]):.2f}% | "
                         f"{np.mean(b[30]):.2f}% | {', '.join(f'{v:.2f}' for v in b[30])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", default="mobilenet_v1:0.3", metavar="MODEL:P")
    parser.add_argument("--source-ratio", type=float, default=0.3, help="the home model's scenario the sources are of")
    parser.add_argument("--sources", nargs="+", default=["amc-ddpg:baseline", "tpe:baseline", POOLED],
                        help=f"agent:method pairs (the best run of each), or {POOLED!r}")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--out", type=Path, default=Path("runs/library-sources"))
    parser.add_argument("--assistant", nargs="*", default=[], metavar="KEY=VALUE",
                        help="assistant settings over the preset's (e.g. shrink=0.5 shrink_race=16)")
    parser.add_argument("--jobs", type=int, default=1, help="searches at a time, one thread each")
    parser.add_argument("--report", action="store_true", help="print the table from the committed data")
    add_into_argument(parser)
    args = parser.parse_args()
    if args.report:
        print_or_write(report(), args.into, library_sources_markers())
        return
    model, ratio = args.scenario.split(":")[0], float(args.scenario.split(":")[1])
    args.out.mkdir(parents=True, exist_ok=True)
    assistant = {k: float(v) if "." in v else int(v) for k, v in (a.split("=", 1) for a in args.assistant)}
    found = plans(model, ratio, args.source_ratio, args.sources, args.seeds, args.trials, args.out, assistant or None)
    with open_backend("processes", workers=args.jobs, device="cpu", threads=1) as backend:
        tasks = [backend.submit(search_to_completion, config, history, library)
                 for _, _, config, history, library in found]
        backend.wait(tasks, poll_seconds=5)
    for (source, seed, *_), task in zip(found, tasks):
        if task.error:
            print(f"{source} seed {seed}: {task.error}")
    print(f"exported to {export(found, args.source_ratio)}")
    print(report())


if __name__ == "__main__":
    main()
