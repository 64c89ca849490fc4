"""The committed data behind the tables: every finished run of a study, one row per trial, compressed.

Studies run on machines that do not last; their history files hold megabytes of agent
weights and are not committed. This keeps what every figure is computed from, in
benchmarks/data/ (the columns are in benchmarks/README.md):
* <study>-trials.csv.gz: one row per trial of every finished run, with the test-split
  accuracy of each trial that set a new best-so-far (what the test-split guard reads);
* <study>-policies.csv.gz: one row per run, its best policy played again and scored on the
  reward and the test split.
Policies are scored once and cached in <out>/scores.json. An export adds to the files
already there and keeps every run they hold, so a study can be run and exported a part at a
time, on machines that do not share files.

    .venv/bin/python benchmarks/data_export.py --study league --out runs/league
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from prune_gym.agents.config import default_warmup
from prune_gym.agents.methods import METHODS
from prune_gym.agents.loop import make_env
from prune_gym.benchmarks.study import SOURCE_RUN, STUDIES, Job, Study, history_of, job_status
from prune_gym.errors import PruneGymError
from prune_gym.evaluation import accuracy
from prune_gym.history import HistoryStore, Run
from prune_gym.policies import play

DATA = Path(__file__).parent / "data"
RUN_COLUMNS = ("study", "job", "model", "ratio", "source", "method", "agent", "agent_settings", "seed",
               "device_kind")
TRIAL_COLUMNS = (*RUN_COLUMNS, "trial", "accuracy", "macs_ratio", "origin", "seconds", "test_accuracy", "policy")
ROUNDING = 1e-6  # the data hold accuracies to 6 decimals: a difference under this is the rounding's
POLICY_COLUMNS = (*RUN_COLUMNS, "trials", "best_trial", "reward_accuracy", "test_accuracy", "macs_ratio",
                  "checkpoint_digest", "policy")


def finished_runs(out: Path, jobs: list[Job]) -> dict[str, Run]:
    """The jobs' runs that have finished in `out`, by job key."""
    runs = {}
    for job in jobs:
        path = history_of(out, job)
        if job_status(path)[0] == "finished":
            with HistoryStore(path) as store:
                runs[job.key] = store.read_run(SOURCE_RUN)
    return runs


def scored(env: gym.Env, policy: list[float]) -> tuple[float, float, float]:
    """(reward-split accuracy, test accuracy, MACs ratio) of a policy played through `env`."""
    info = play(env, policy)
    unwrapped = env.unwrapped
    test = accuracy(unwrapped.pruned_network, unwrapped.workload.test.batches(unwrapped.batch_size, unwrapped.device))
    return info["accuracy"], test, info["macs_ratio"]


class Scores:
    """(reward, test, MACs ratio) of a run's policies, played again; cached by job key, run start and trial
    in a JSON file, so that an export of a study in progress scores only its new runs."""

    def __init__(self, path: Path, env_settings: dict[str, Any]):
        self.path = path
        self.cache = json.loads(path.read_text()) if path.exists() else {}
        self.env_settings = env_settings
        self.envs: dict[tuple[str, float], gym.Env] = {}

    def __call__(self, job: Job, run: Run, dataset: str, trial: int | None = None) -> tuple[float, float, float]:
        """The scores of trial `trial`'s policy, or of the best policy the run recorded when it finished."""
        key = f"{job.key} {run.info.start_time} {'best' if trial is None else trial}"
        if key not in self.cache:
            env = self.envs.get((job.model, job.ratio))
            if env is None:
                env = self.envs[job.model, job.ratio] = make_env(job.config(dataset, **self.env_settings))
            policy = run.best_policy() if trial is None else run.actions[trial]
            self.cache[key] = list(scored(env, policy.tolist()))
            self.path.write_text(json.dumps(self.cache, indent=1))
        return tuple(self.cache[key])


def record_trials(accuracies: np.ndarray) -> list[int]:
    """The trials that set a new best-so-far (the first trial included)."""
    best = np.maximum.accumulate(accuracies)
    return [0, *np.flatnonzero(best[1:] > best[:-1]) + 1]


def settings_text(job: Job, settings: dict[str, Any]) -> str:
    """A run's settings beyond its method's defaults, as the agent_settings column writes them: the searcher's,
    then the assistant's (`assistant` alone when a method that has none takes it with its defaults), the
    rescale and the warm-up; '-' for none."""
    parts = [f"{k}={v}" for k, v in sorted(settings.get("agent_kwargs", {}).items())]
    assistant = settings.get("assistant")
    if assistant is not None:
        parts += [f"assistant.{k}={v}" for k, v in sorted(assistant.items())]
        if not assistant and not METHODS[job.base_method].assistant:
            parts.append("assistant")
    if settings.get("rescale", "eq2") != "eq2":
        parts.append(f"rescale={settings['rescale']}")
    if settings.get("assistant_rescale") is not None:
        parts.append(f"assistant_rescale={settings['assistant_rescale']}")
    default = default_warmup(job.base_method, job.agent)
    if settings.get("warmup", default) != default:
        parts.append(f"warmup={settings['warmup']}")
    return " ".join(parts) or "-"


def run_fields(study_name: str, job: Job, run: Run) -> list[Any]:
    source = f"{job.source.model} {job.source.ratio}" if job.source else "-"
    settings = settings_text(job, run.info.settings)
    return [study_name, job.key, job.model, job.ratio, source, job.method, job.agent, settings, job.seed,
            run.info.settings.get("device_kind", "unknown")]


def export_study(study_name: str, study: Study, out: Path, data: Path = DATA,
                 env_settings: dict[str, Any] | None = None) -> tuple[Path, Path, int]:
    """Add the study's finished runs in `out` that `data` does not hold yet; the two files and the number of
    runs they hold. A run already in `data` is kept as it is, so that a source run made again on another
    machine never replaces the one its committed transfers started from."""
    paths = (data / f"{study_name}-trials.csv.gz", data / f"{study_name}-policies.csv.gz")
    kept = {path: read_csv_gz(path) if path.exists() else [] for path in paths}
    held = {row["job"] for row in kept[paths[1]]}
    jobs = [job for job in study.jobs() if job.key not in held]
    runs = finished_runs(out, jobs)
    scores = Scores(out / "scores.json", env_settings or {"device": "auto", "checkpoint": None, "data_root": None,
                                                           "env_kwargs": dict(study.env_options)})
    digests = committed_digests(study_name, data)
    trials, policies = [], []
    for job in jobs:
        run = runs.get(job.key)
        if run is None:
            continue
        digest = run.info.scenario.checkpoint_digest
        if digests.setdefault(job.model, digest) != digest:
            raise PruneGymError(f"{history_of(out, job)} pruned {job.model} weights {digest[:12]}, the data in {data} "
                                f"weights {digests[job.model][:12]}: one study prunes one network per model")
        fields = run_fields(study_name, job, run)
        tested = {t: scores(job, run, study.dataset, t)[1] for t in record_trials(run.accuracies)}
        trials += [[*fields, t, f"{run.accuracies[t]:.6f}", f"{run.macs_ratios[t]:.6f}", run.origins[t],
                    f"{run.wall_times[t]:.3f}", f"{tested[t]:.6f}" if t in tested else "", policy_text(run.actions[t])]
                   for t in range(run.n_trials)]
        reward, test, macs = scores(job, run, study.dataset)
        policies.append([*fields, run.n_trials, run.best_trial(), f"{reward:.6f}", f"{test:.6f}", f"{macs:.6f}",
                         run.info.scenario.checkpoint_digest, policy_text(run.best_policy())])
    data.mkdir(parents=True, exist_ok=True)
    # The order of the whole study, however it was restricted for this export, then of its extra seeds: the same
    # rows, the same bytes.
    whole = STUDIES[study_name].jobs() if study_name in STUDIES else []
    order = {key: i for i, key in enumerate(dict.fromkeys(job.key for job in [*whole, *study.jobs()]))}
    for path, columns, rows in zip(paths, (TRIAL_COLUMNS, POLICY_COLUMNS), (trials, policies)):
        rows = [[row[c] for c in columns] for row in kept[path]] + rows
        rows.sort(key=lambda row: order.get(row[1], len(order)))  # stable: trials stay in order within a run
        write_csv_gz(path, columns, rows)
    return paths[0], paths[1], len(held) + len(policies)


def differing_reruns(study_name: str, study: Study, out: Path, data: Path = DATA) -> list[str]:
    """One line for each committed run of which `out` holds another finished run whose reward-split accuracies
    differ, saying at which trial (from 1) the two part. The export keeps the committed run; where the job is a
    source, the transfers searched in `out` learned from the other. A source searched again on another CPU can
    score one image differently (floating point), and its search takes another path from there."""
    path = data / f"{study_name}-trials.csv.gz"
    committed: dict[str, list[float]] = {}
    for row in read_csv_gz(path) if path.exists() else []:
        committed.setdefault(row["job"], []).append(float(row["accuracy"]))
    sources = {job.source.key for job in study.jobs() if job.source}
    lines = []
    for key, run in finished_runs(out, [job for job in study.jobs() if job.key in committed]).items():
        old, new = np.array(committed[key]), run.accuracies
        parted = np.flatnonzero(np.abs(old[:len(new)] - new[:len(old)]) > ROUNDING)
        if len(parted) or len(old) != len(new):
            trial = int(parted[0]) + 1 if len(parted) else min(len(old), len(new)) + 1
            lines.append(f"{key}: the run in {out} parts from the committed one at trial {trial} (best "
                         f"{100 * new.max():.2f}% against {100 * old.max():.2f}%); the data keep the committed run"
                         + (f", while the transfers searched in {out} learned from the other" if key in sources
                            else ""))
    return lines


def committed_jobs(study_name: str, data: Path = DATA) -> dict[str, int]:
    """The study's jobs whose runs are in the committed data, with the trials each played."""
    path = data / f"{study_name}-policies.csv.gz"
    return {row["job"]: int(row["trials"]) for row in read_csv_gz(path)} if path.exists() else {}


def committed_digests(study_name: str, data: Path = DATA) -> dict[str, str]:
    """Per model, the digest of the trained weights that the study's committed runs pruned."""
    path = data / f"{study_name}-policies.csv.gz"
    digests: dict[str, set[str]] = {}
    for row in read_csv_gz(path) if path.exists() else []:
        digests.setdefault(row["model"], set()).add(row["checkpoint_digest"])
    mixed = sorted(model for model, found in digests.items() if len(found) > 1)
    if mixed:
        raise PruneGymError(f"{path} holds runs on different weights of {', '.join(mixed)}: its tables would compare "
                            f"searches of different networks")
    return {model: found.pop() for model, found in digests.items()}


def policy_text(fractions: np.ndarray) -> str:
    return " ".join(f"{f:.6f}" for f in fractions)


def write_csv_gz(path: Path, columns: tuple[str, ...], rows: list[list[Any]]) -> None:
    """A gzipped CSV with no timestamp in it, so that the same rows always give the same bytes."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        f.write(text.getvalue().encode())


def require_data_folder(parser: argparse.ArgumentParser, data: Path) -> None:
    """Stop unless `data` is a folder: the committed data say which jobs are done, so a missing folder must not
    pass for an empty one (a non-editable install looks for benchmarks/data inside the installed package)."""
    if not data.is_dir():
        parser.error(f"--data {data} is not a folder; the committed data are benchmarks/data in a clone of the "
                     f"repository, installed with `pip install -e .`")


def read_csv_gz(path: Path) -> list[dict[str, str]]:
    with gzip.open(path, "rt", newline="") as f:
        return list(csv.DictReader(f))


def held_trials(path: Path) -> tuple[list[list[str]], set[str]]:
    """A trials file's rows, each in `TRIAL_COLUMNS` order, and the jobs they hold (none where there is no file):
    what an export that keeps the committed runs adds to."""
    rows = read_csv_gz(path) if path.exists() else []
    return [[row[c] for c in TRIAL_COLUMNS] for row in rows], {row["job"] for row in rows}


def finished_run(history: Path) -> Run | None:
    """The one run of a single search's history file, if it has finished (None where there is no file yet)."""
    if not history.exists():
        return None
    with HistoryStore(history) as store:
        (info,) = store.find_runs()
        return store.read_run(info.run_id) if info.status == "finished" else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", required=True, choices=list(STUDIES))
    parser.add_argument("--out", required=True, type=Path, help="the study's --out directory")
    parser.add_argument("--data", type=Path, default=DATA, help="where the compressed tables go")
    parser.add_argument("--device", default="auto", help="where the best policies are scored again")
    parser.add_argument("--seeds", nargs="+", type=int, metavar="SEED",
                        help="the seeds the study ran with --seeds (default: the study's own)")
    args = parser.parse_args()
    require_data_folder(parser, args.data)
    study = STUDIES[args.study]
    if args.seeds:
        try:
            study = study.with_seeds(args.seeds)
        except PruneGymError as exc:
            parser.error(str(exc))
    settings = {"device": args.device, "checkpoint": None, "data_root": None, "env_kwargs": dict(study.env_options)}
    for line in differing_reruns(args.study, study, args.out, args.data):
        print(line)
    trials, policies, n = export_study(args.study, study, args.out, args.data, settings)
    print(f"{n} runs: {trials}, {policies}")


if __name__ == "__main__":
    main()
