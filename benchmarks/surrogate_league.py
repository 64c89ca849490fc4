"""The league played again on the surrogate tasks: do the searchers finish in the same order as on the real ones?

Each searcher of a task's league (the history library's searches from scratch) searches the
task's surrogate twin (`prune_gym.surrogate`) with the league's seeds and 300 trials, two
searches at a time with one thread each, resumed where a previous run of this script
stopped. Their trials go into benchmarks/data/surrogate-league-trials.csv.gz (a league entry
file, `prune_gym.league.write_entry`, one entry per searcher); `--report` sets each
searcher's mean b(300) on the surrogate beside its real one, with the two orders and
Kendall's tau between them:

    .venv/bin/python benchmarks/surrogate_league.py --out runs/surrogate-league
    .venv/bin/python benchmarks/surrogate_league.py --report --into benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

from prune_gym.agents.config import SearchConfig
from prune_gym.agents.loop import search_to_completion
from prune_gym.benchmarks.data_export import DATA
from prune_gym.benchmarks.quality import best_so_far_at
from prune_gym.benchmarks.results_file import add_into_argument, print_or_write, surrogate_league_markers
from prune_gym.cluster import open_backend
from prune_gym.history import HistoryStore
from prune_gym.league import league_reference, read_entries, write_entries
from prune_gym.tasks import SURROGATES, Task

SEEDS, TRIALS = (0, 1, 2, 3, 4), 300
DATA_FILE = "surrogate-league-trials.csv.gz"


def surrogate_search(surrogate_id: str, agent: str, seed: int, history: Path, *, threads: int | None = None,
                     device: str | None = None) -> str:
    """One league search of a surrogate task, recorded in its own history file; its run id. The surrogate runs in
    numpy on the CPU whatever the `device` (a backend's worker passes one); the searcher's torch takes `threads`."""
    t = SURROGATES[surrogate_id]
    config = SearchConfig(t.model, t.dataset, t.ratio, TRIALS, seed=seed, device="cpu", agent=agent,
                          checkpoint=str(t.env_kwargs()["checkpoint"]))
    return search_to_completion(config, history, threads=threads, env=gym.make(surrogate_id))


def history_file(out: Path, surrogate_id: str, agent: str, seed: int) -> Path:
    return out / surrogate_id / f"{agent}-seed{seed}.h5"


def run(out: Path, tasks: list[str], workers: int = 2, data: Path = DATA) -> Path:
    """Every league searcher of each task searched on its surrogate; the finished ones exported to `data`."""
    plans = [(sid, agent, seed) for sid in tasks for agent in league_reference(SURROGATES[sid]).curves
             for seed in SEEDS]
    start = time.perf_counter()
    with open_backend("processes", workers=workers, device="cpu", threads=1) as backend:
        jobs = [backend.submit(surrogate_search, sid, agent, seed, history_file(out, sid, agent, seed))
                for sid, agent, seed in plans]
        backend.wait(jobs, poll_seconds=5)
    failed = [f"{plan}: {job.error}" for plan, job in zip(plans, jobs) if job.error]
    if failed:
        raise SystemExit("\n".join(failed))
    print(f"{len(plans)} searches in {time.perf_counter() - start:.0f} s")
    entries: dict[str, dict] = {}
    for sid, agent, seed in plans:
        with HistoryStore(history_file(out, sid, agent, seed)) as store:
            (info,) = store.find_runs(status="finished")
            entries.setdefault(agent, {})[sid, seed] = store.read_run(info.run_id)
    write_entries(data / DATA_FILE, entries)
    return data / DATA_FILE


def kendall_tau(a: list[float], b: list[float]) -> float:
    """Kendall's tau-b between two scorings of the same items."""
    concordant = discordant = ties_a = ties_b = 0
    for i in range(len(a)):
        for j in range(i + 1, len(a)):
            x, y = np.sign(a[i] - a[j]), np.sign(b[i] - b[j])
            if x == 0 and y == 0:
                continue
            ties_a += x == 0
            ties_b += y == 0
            concordant += x * y > 0
            discordant += x * y < 0
    pairs = concordant + discordant
    return float((concordant - discordant) / np.sqrt((pairs + ties_a) * (pairs + ties_b))) if pairs else float("nan")


def report(data: Path = DATA) -> str:
    """Per task: each searcher's mean b(300) on the surrogate and on the real task, ranked, and Kendall's tau."""
    entries = read_entries([data / DATA_FILE])
    lines = []
    for sid, curves in sorted(entries.items()):
        task: Task = SURROGATES[sid]
        real = league_reference(task).curves
        names = sorted(curves, key=lambda n: -best_so_far_at(curves[n], TRIALS)[0])
        fake = [best_so_far_at(curves[n], TRIALS)[0] for n in names]
        true = [best_so_far_at(real[n], TRIALS)[0] for n in names]
        real_rank = {n: i + 1 for i, n in enumerate(sorted(names, key=lambda n: -true[names.index(n)]))}
        lines += [f"### {sid}: Kendall's tau {kendall_tau(fake, true):+.2f} between the two orders at T = {TRIALS}", "",
                  "| searcher | b(300) on the surrogate (seeds) | rank | b(300) on the real task (seeds) | rank |",
                  "|---|---|---|---|---|"]
        lines += [f"| {n} | {100 * f:.2f}% ({len(curves[n])}) | {i + 1} | {100 * r:.2f}% ({len(real[n])}) | "
                  f"{real_rank[n]} |" for i, (n, f, r) in enumerate(zip(names, fake, true))]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=list(SURROGATES), metavar="ID", help="surrogate task ids")
    parser.add_argument("--out", type=Path, default=Path("runs/surrogate-league"))
    parser.add_argument("--jobs", type=int, default=2, help="searches at a time, one thread each")
    parser.add_argument("--report", action="store_true", help="print the comparison from the committed data")
    add_into_argument(parser)
    args = parser.parse_args()
    if args.report:
        print_or_write(report(), args.into, surrogate_league_markers())
        return
    print(run(args.out, args.tasks, args.jobs))


if __name__ == "__main__":
    main()
