"""The committed data behind the tables: every finished run of a study, one row per trial, compressed.

Studies run on machines that do not last; their history files hold megabytes of agent
weights and are not committed. This keeps what every figure is computed from, in
benchmarks/data/ (the columns are in benchmarks/README.md):
* <study>-trials.csv.gz: one row per trial of every finished run;
* <study>-policies.csv.gz: one row per run, its best policy played again and scored on the
  reward and the test split (cached in <out>/scores.json).

    .venv/bin/python benchmarks/data_export.py --study league --out runs/league
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
from pathlib import Path
from typing import Any

from prune_gym.benchmarks.report import Scores, finished_runs
from prune_gym.benchmarks.study import STUDIES, Job, Study
from prune_gym.history import Run

DATA = Path(__file__).parent / "data"
RUN_COLUMNS = ("study", "model", "ratio", "source", "method", "agent", "seed", "device_kind")
TRIAL_COLUMNS = (*RUN_COLUMNS, "trial", "accuracy", "macs_ratio", "origin")
POLICY_COLUMNS = (*RUN_COLUMNS, "trials", "best_trial", "reward_accuracy", "test_accuracy", "macs_ratio",
                  "checkpoint_digest", "policy")


def run_fields(study_name: str, job: Job, run: Run) -> list[Any]:
    source = f"{job.source.model} {job.source.ratio}" if job.source else "-"
    return [study_name, job.model, job.ratio, source, job.method, job.agent, job.seed,
            run.info.settings.get("device_kind", "unknown")]


def export_study(study_name: str, study: Study, out: Path, data: Path = DATA,
                 env_settings: dict[str, Any] | None = None) -> tuple[Path, Path, int]:
    """Write the study's finished runs into `data`; the two files and the number of runs."""
    jobs = study.jobs()
    runs = finished_runs(out, jobs)
    scores = Scores(out / "scores.json", env_settings or {"device": "auto", "checkpoint": None, "data_root": None,
                                                           "env_kwargs": {}})
    trials, policies = [], []
    for job in jobs:
        run = runs.get(job.key)
        if run is None:
            continue
        fields = run_fields(study_name, job, run)
        trials += [[*fields, t, f"{run.accuracies[t]:.6f}", f"{run.macs_ratios[t]:.6f}", run.origins[t]]
                   for t in range(run.n_trials)]
        reward, test, macs = scores(job, run, study.dataset)
        policies.append([*fields, run.n_trials, run.best_trial(), f"{reward:.6f}", f"{test:.6f}", f"{macs:.6f}",
                         run.info.scenario.checkpoint_digest, " ".join(f"{f:.6f}" for f in run.final_policy)])
    data.mkdir(parents=True, exist_ok=True)
    paths = (data / f"{study_name}-trials.csv.gz", data / f"{study_name}-policies.csv.gz")
    for path, columns, rows in zip(paths, (TRIAL_COLUMNS, POLICY_COLUMNS), (trials, policies)):
        write_csv_gz(path, columns, rows)
    return paths[0], paths[1], len(policies)


def write_csv_gz(path: Path, columns: tuple[str, ...], rows: list[list[Any]]) -> None:
    """A gzipped CSV with no timestamp in it, so that the same rows always give the same bytes."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        f.write(text.getvalue().encode())


def read_csv_gz(path: Path) -> list[dict[str, str]]:
    with gzip.open(path, "rt", newline="") as f:
        return list(csv.DictReader(f))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", required=True, choices=list(STUDIES))
    parser.add_argument("--out", required=True, type=Path, help="the study's --out directory")
    parser.add_argument("--device", default="auto", help="where the best policies are scored again")
    args = parser.parse_args()
    settings = {"device": args.device, "checkpoint": None, "data_root": None, "env_kwargs": {}}
    trials, policies, n = export_study(args.study, STUDIES[args.study], args.out, env_settings=settings)
    print(f"{n} finished runs: {trials}, {policies}")


if __name__ == "__main__":
    main()
