"""The history library that ships with prune-gym, built from the committed studies' data.

Every finished run in benchmarks/data/ of a study that pruned the committed checkpoints with
the env's default options (the residual streams give a network other units) becomes a
finished run of one history file: each trial's policy, reward-split accuracy and MACs ratio,
the observations the env shows for that policy (played without pruning, `ChannelPruneEnv.
simulate`), the test accuracy of the trials the data scored (the run's note `test_accuracy`,
by trial), and its searcher, method and study. A run kept by several studies is written once.
The file goes, gzipped, into the history package with a manifest that holds its checksum
(`prune_gym.history.library` reads it):

    .venv/bin/python benchmarks/library_export.py
"""

from __future__ import annotations

import argparse
import gzip
import json
import shutil
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from prune_gym.agents.config import SearchConfig
from prune_gym.agents.loop import make_env, scenario_of
from prune_gym.benchmarks.data_export import DATA, committed_digests, read_csv_gz
from prune_gym.benchmarks.study import STUDIES, committed_checkpoint
from prune_gym.checkpoints import checkpoint_digest
from prune_gym.history import HistoryStore
from prune_gym.history.library import ARCHIVE, LIBRARY_VERSION, MANIFEST, sha256

RUN_SETTINGS = ("study", "job", "source", "agent_settings")  # what a library run records of its job


def library_runs(data: Path = DATA) -> dict[str, list[dict[str, str]]]:
    """The trial rows of each run the library holds, by job key, in the studies' order (first study wins)."""
    runs: dict[str, list[dict[str, str]]] = {}
    for name, study in STUDIES.items():
        path = data / f"{name}-trials.csv.gz"
        if study.env_options or not path.exists():
            continue
        digests = committed_digests(name, data)
        committed = {m: checkpoint_digest(committed_checkpoint(m, study.dataset)) for m in digests}
        if digests != committed:
            continue  # pruned other weights than those that ship
        by_job: dict[str, list[dict[str, str]]] = defaultdict(list)
        for row in read_csv_gz(path):
            by_job[row["job"]].append(row)
        for job, rows in by_job.items():
            runs.setdefault(job, sorted(rows, key=lambda r: int(r["trial"])))
    return runs


def write_library(out: Path, data: Path = DATA, progress: bool = True) -> dict:
    """Write the library's history file to `out`; its manifest (without the checksum)."""
    runs = library_runs(data)
    scenarios = sorted({(rows[0]["model"], float(rows[0]["ratio"])) for rows in runs.values()})
    counts = {"runs": 0, "trials": 0}
    with HistoryStore(out, "a") as store:
        for model, ratio in tqdm(scenarios, desc="library", unit="scenario", disable=not progress):
            env = make_env(SearchConfig(model, "fashion-mnist", ratio, 1, device="cpu",
                                        checkpoint=str(committed_checkpoint(model, "fashion-mnist"))))
            scenario = scenario_of(env)
            for job, rows in runs.items():
                first = rows[0]
                if (first["model"], float(first["ratio"])) != (model, ratio):
                    continue
                settings = {"agent": first["agent"], **{key: first[key] for key in RUN_SETTINGS}}
                writer = store.start_run(scenario, first["method"], settings, int(first["seed"]))
                tests = {}
                for row in rows:
                    policy = np.array(row["policy"].split(), dtype=np.float64)
                    observations, _ = env.unwrapped.simulate(policy)
                    accuracy = float(row["accuracy"])
                    trial = writer.append_trial(observations[:-1], policy, accuracy, accuracy,
                                                float(row["macs_ratio"]), row["origin"], float(row["seconds"]))
                    if row["test_accuracy"]:
                        tests[str(trial)] = float(row["test_accuracy"])
                best = int(np.argmax([float(row["accuracy"]) for row in rows]))
                writer.finish(best_policy=np.array(rows[best]["policy"].split(), dtype=np.float64))
                store.annotate(writer.run_id, "test_accuracy", tests)
                counts["runs"] += 1
                counts["trials"] += len(rows)
            env.close()
    return {"version": LIBRARY_VERSION, **counts,
            "scenarios": [f"{model} {ratio:g}" for model, ratio in scenarios]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="the committed studies' data")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        h5 = Path(tmp) / "library.h5"
        manifest = write_library(h5, args.data)
        manifest["sha256"] = sha256(h5)
        with open(h5, "rb") as raw, open(ARCHIVE, "wb") as packed, \
                gzip.GzipFile(fileobj=packed, mode="wb", mtime=0) as f:
            shutil.copyfileobj(raw, f)
    MANIFEST.write_text(json.dumps(manifest, indent=1) + "\n")
    print(f"{ARCHIVE}: {manifest['runs']} runs, {manifest['trials']} trials, "
          f"{ARCHIVE.stat().st_size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
