"""The default search, measured leave-one-out: how it stands against the best searcher from scratch.

A search without `--source` draws on the history library that ships (`prune_gym.history.
library`) by the `library` preset. Measured on the library itself, a scenario would find
its own best runs there; so each scenario's searches draw on a copy of the library that
holds none of that scenario's runs, and, for a model other than ResNet-20 (the model most
runs pruned), none of that model's. The source is chosen as the default search chooses it
(`choose_sources`). Each search runs on the committed checkpoint, 300 trials, two at a time
with one thread each, resumed where a previous run of this script stopped; finished runs
are exported with every trial (as `data_export.py` writes a study's) into
benchmarks/data/library-trials.csv.gz, which `--report` compares with the league's searches
from scratch at T = 10, 30, 100 and 300:

    .venv/bin/python benchmarks/library_study.py --scenarios resnet20:0.2 --seeds 0 1 2 3 4 --out runs/library
    .venv/bin/python benchmarks/library_study.py --report --into benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from prune_gym.agents.config import SearchConfig
from prune_gym.agents.loop import make_env, search_to_completion
from prune_gym.agents.presets import Preset
from prune_gym.agents.presets.library import LIBRARY
from prune_gym.agents.searchers import DEFAULT_SEARCHER, recommended_searcher
from prune_gym.agents.source_choice import AUTO, choose_sources
from prune_gym.benchmarks import quality
from prune_gym.benchmarks.compare import from_scratch_runs
from prune_gym.benchmarks.data_export import (DATA, TRIAL_COLUMNS, finished_run, held_trials, policy_text,
                                              record_trials, scored, write_csv_gz)
from prune_gym.benchmarks.report import RunData, load_runs
from prune_gym.benchmarks.results_file import add_into_argument, library_markers, print_or_write
from prune_gym.benchmarks.study import committed_checkpoint
from prune_gym.cluster import open_backend
from prune_gym.history import HistoryStore
from prune_gym.history.library import library_path

STUDY = "library"
DATASET = "fashion-mnist"
SCENARIOS = (("resnet20", 0.2), ("resnet20", 0.3), ("mobilenet_v1", 0.3), ("resnet56", 0.2))
HOME_MODEL = "resnet20"  # a scenario of another model draws on no run of its own model
REFERENCES = ("league", "league-models")  # the studies whose searches from scratch it is compared with
# The ways of drawing on the library measured here: the default's preset, and variants of it (unregistered).
VARIANTS = {p.name: p for p in (
    LIBRARY,
    # the `history` preset's assistant: it keeps every other trial until trial 300 (LIBRARY's before it handed over)
    Preset("library-kept-turns", LIBRARY.name, assistant={"handover": "earned", "keep_until": 300}),
    # the assistant hands over after 10 trials, not 30: for a source of another network, whose policies say less
    Preset("library-brief", LIBRARY.name, assistant={"trials": 10}, assistant_across_models={"shrink": 1.0}),
    # another network's records as they are, with no shrink race (LIBRARY's before the race)
    Preset("library-no-race", LIBRARY.name, assistant_across_models={"shrink": 1.0}),
    # the shrink race, then a hand-over after 10 trials for another network's source (LIBRARY's hands over after 30)
    Preset("library-brief-race", LIBRARY.name, assistant_across_models={"trials": 10}),
    # the shrink race, the winning shrunk reading's trials kept out of the searcher's memory
    Preset("library-untaught-shrunk", LIBRARY.name, assistant_across_models={"teach_shrunk": False}),
)}


@dataclass(frozen=True)
class LibraryJob:
    model: str
    ratio: float
    seed: int
    agent: str = DEFAULT_SEARCHER
    preset: Preset = LIBRARY
    trials: int = 300

    @property
    def key(self) -> str:
        agent = "" if self.agent == DEFAULT_SEARCHER else f"{self.agent}-"
        return f"{self.model}-p{self.ratio}-{agent}{self.preset.name}-seed{self.seed}"

    def config(self, source: str | None = None) -> SearchConfig:
        return SearchConfig(self.model, DATASET, self.ratio, self.trials, seed=self.seed, device="cpu",
                            checkpoint=str(committed_checkpoint(self.model, DATASET)), agent=self.agent,
                            preset=self.preset, source=source)


def left_out(model: str, ratio: float, run_model: str, run_ratio: float) -> bool:
    """Whether a library run of (run_model, run_ratio) is kept out of the library a search of (model, ratio)
    draws on."""
    return run_model == model and (run_ratio == ratio or model != HOME_MODEL)


def leave_one_out_library(model: str, ratio: float, out: Path) -> Path:
    """A copy of the shipped library without the runs a search of (model, ratio) must not see (made once)."""
    path = out / "libraries" / f"{model}-p{ratio}.h5"
    if path.exists():
        return path
    shipped = library_path()
    with HistoryStore(shipped) as store:
        kept = [r.run_id for r in store.find_runs()
                if not left_out(model, ratio, r.scenario.model, r.scenario.target_ratio)]
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_suffix(".part")
    part.unlink(missing_ok=True)
    with HistoryStore(part, "a") as store:
        store.import_runs(shipped, kept)
    part.rename(path)
    return path


def run_jobs(jobs: list[LibraryJob], out: Path, workers: int = 2) -> None:
    """Each job's search brought to its last trial, `workers` at a time, one thread each."""
    plans = []
    for job in jobs:
        library = leave_one_out_library(job.model, job.ratio, out)
        candidates = choose_sources(library, job.config(AUTO), limit=1)
        if not candidates:
            raise SystemExit(f"{job.key}: the library left for it holds no usable run")
        candidate = candidates[0]
        print(f"{job.key}: from {candidate}")
        plans.append((job.config(candidate.run.run_id), out / "runs" / f"{job.key}.h5", library))
    with open_backend("processes", workers=workers, device="cpu", threads=1) as backend:
        tasks = [backend.submit(search_to_completion, config, history, library) for config, history, library in plans]
        backend.wait(tasks, poll_seconds=5)
    failed = [f"{job.key}: {t.error}" for job, t in zip(jobs, tasks) if t.error]
    if failed:
        raise SystemExit("\n".join(failed))


def export(jobs: list[LibraryJob], out: Path, data: Path = DATA) -> Path:
    """The finished runs of `jobs` added to `data`/library-trials.csv.gz, one row per trial (runs it holds kept)."""
    path = data / f"{STUDY}-trials.csv.gz"
    rows, held = held_trials(path)
    envs = {}
    for job in jobs:
        run = None if job.key in held else finished_run(out / "runs" / f"{job.key}.h5")
        if run is None:
            continue
        info = run.info
        with HistoryStore(leave_one_out_library(job.model, job.ratio, out)) as library:
            source = library.run_info(info.sources[0])
        if (job.model, job.ratio) not in envs:
            envs[job.model, job.ratio] = make_env(job.config())
        env = envs[job.model, job.ratio]
        tested = {t: scored(env, run.actions[t].tolist())[1] for t in record_trials(run.accuracies)}
        fields = [STUDY, job.key, job.model, job.ratio, f"{source.scenario.model} {source.scenario.target_ratio:g}",
                  STUDY, job.agent, "-", job.seed, info.settings.get("device_kind", "unknown")]
        rows += [[*fields, t, f"{run.accuracies[t]:.6f}", f"{run.macs_ratios[t]:.6f}", run.origins[t],
                  f"{run.wall_times[t]:.3f}", f"{tested[t]:.6f}" if t in tested else "", policy_text(run.actions[t])]
                 for t in range(run.n_trials)]
    write_csv_gz(path, TRIAL_COLUMNS, rows)
    return path


def from_scratch(data: Path = DATA) -> dict[tuple[str, float, str], list[RunData]]:
    """The reference studies' searches from scratch with default settings, by (model, ratio, searcher)."""
    groups: dict[tuple[str, float, str], list[RunData]] = {}
    for name in REFERENCES:
        for key, runs in from_scratch_runs(load_runs(data / f"{name}-trials.csv.gz")).items():
            groups.setdefault(key, []).extend(runs)
    return groups


def report(data: Path = DATA) -> str:
    """Per scenario and budget T: the default search's mean b(T), the best searcher's from scratch at that T,
    and the difference with its 90% bootstrap interval over both's seeds."""
    runs: dict[tuple[str, float, str, str], list[RunData]] = {}
    for run in load_runs(data / f"{STUDY}-trials.csv.gz"):
        runs.setdefault((run.model, run.ratio, run.agent, run.label), []).append(run)
    scratch = from_scratch(data)
    lines = ["| scenario | searcher, preset, drawing on | seeds | " + " | ".join(f"b({t}) against the best from scratch"
                                                                      for t in quality.BUDGETS) + " |",
             "|---|---|---|" + "---|" * len(quality.BUDGETS)]
    for (model, ratio, agent, preset_name), mine in sorted(runs.items()):
        curves = [r.accuracies for r in mine]
        rivals = {a: [r.accuracies for r in rs] for (m, p, a), rs in scratch.items() if (m, p) == (model, ratio)}
        cells = []
        for t in quality.BUDGETS:
            if t > quality.common_length(curves):
                cells.append("-")
                continue
            best = max((a for a in rivals if quality.common_length(rivals[a]) >= t),
                       key=lambda a: quality.mean_best_so_far(rivals[a])[t - 1])
            (mean, _), (gap, (low, high)) = (quality.best_so_far_at(curves, t),
                                             quality.difference_at(curves, rivals[best], t))
            cells.append(f"{100 * mean:.2f}% against {best} {100 * (mean - gap):.2f}%: {100 * gap:+.2f} pp "
                         f"[{100 * low:+.2f}, {100 * high:+.2f}], {quality.verdict((gap, (low, high)))}")
        sources = ", ".join(sorted({r.source for r in mine}))
        lines.append(f"| {model} {ratio:g} | {agent}, {preset_name}, {sources} | {len(mine)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def searcher(agent: str, model: str) -> str:
    """`agent`, or for 'recommended' the command line's searcher for a source of the model a scenario's searches
    draw on here (their own for the home model, else the home model's)."""
    return recommended_searcher(model, model if model == HOME_MODEL else HOME_MODEL) if agent == "recommended" \
        else agent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenarios", nargs="+", default=[f"{m}:{p}" for m, p in SCENARIOS], metavar="MODEL:P")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--agent", default=DEFAULT_SEARCHER,
                        help="a searcher, or 'recommended': the command line's choice for each scenario's source")
    parser.add_argument("--preset", default=LIBRARY.name, choices=list(VARIANTS),
                        help="how the searches draw on the library")
    parser.add_argument("--out", type=Path, default=Path("runs/library"))
    parser.add_argument("--jobs", type=int, default=2, help="searches at a time, one thread each")
    parser.add_argument("--report", action="store_true", help="print the comparison from the committed data")
    add_into_argument(parser)
    args = parser.parse_args()
    if args.report:
        print_or_write(report(), args.into, library_markers())
        return
    scenarios = [(text.split(":")[0], float(text.split(":")[1])) for text in args.scenarios]
    jobs = [LibraryJob(model, ratio, seed, searcher(args.agent, model), VARIANTS[args.preset])
            for model, ratio in scenarios for seed in args.seeds]
    run_jobs(jobs, args.out, args.jobs)
    print(f"exported to {export(jobs, args.out)}")


if __name__ == "__main__":
    main()
