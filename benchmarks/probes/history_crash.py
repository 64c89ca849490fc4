"""How often a writer killed with SIGKILL at a random moment loses a trial it had acknowledged.

Each round starts a writer process that appends trials as fast as it can and prints each
trial's number once `append_trial` has returned. After a random number of them, and a random
fraction of a millisecond more, it is killed with SIGKILL; then a fresh reader must find the
file readable and every acknowledged trial in it, in order. Prints the count of rounds that
failed and why. The crash-safety test does one such round; this does many, because a
corruption that needs the kill to land inside a few microseconds shows up only in a few
percent of them.

Feeds RESULTS.md, "Crash safety at random moments, and why the per-trial data are no longer compressed".

    .venv/bin/python benchmarks/probes/history_crash.py [--rounds 300] [--seed 0]
"""

from __future__ import annotations

import argparse
import random
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from prune_gym.history import HistoryStore

WRITER = textwrap.dedent("""
    import sys, numpy as np
    from prune_gym.history import HistoryStore, Scenario
    units, features = 20, 13
    scenario = Scenario("resnet20", "fashion-mnist", "d", 0.3, "accuracy", [f"u{i}" for i in range(units)],
                        [f"f{j}" for j in range(features)], np.zeros((units, features), np.float32))
    rng = np.random.default_rng(0)
    with HistoryStore(sys.argv[1], "a") as store:
        writer = store.start_run(scenario, "baseline", {}, seed=0)
        for t in range(100000):
            observations = rng.random((units, features), dtype=np.float32)
            observations[:, 0] = t
            writer.append_trial(observations, rng.random(units), 0.5, 0.5, 0.3, "actor", 0.0)
            print(t, flush=True)
""")


def kill_round(path: Path, acknowledged_before_kill: int, extra_delay_s: float) -> str | None:
    """One writer killed after `acknowledged_before_kill` trials; None if the file holds them all, else why not."""
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    acknowledged = -1
    while acknowledged < acknowledged_before_kill:
        acknowledged = int(writer.stdout.readline())
    time.sleep(extra_delay_s)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    try:
        with HistoryStore(path) as store:
            (info,) = store.find_runs()
            run = store.read_run(info.run_id)
    except Exception as exc:  # what a user would see: the reason is the result
        return f"unreadable: {exc}"
    if run.n_trials < acknowledged + 1:
        return f"{run.n_trials} trials, {acknowledged + 1} acknowledged"
    if not np.array_equal(run.observations[:, 0, 0], np.arange(run.n_trials)):
        return "trials out of order or damaged"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in tqdm(range(args.rounds), desc="kill rounds", unit="round"):
            reason = kill_round(Path(tmp) / f"history-{i}.h5", rng.randint(5, 300), rng.random() * 0.003)
            if reason is not None:
                failures.append((i, reason))
    print(f"{len(failures)} of {args.rounds} killed writers lost or damaged acknowledged trials")
    for i, reason in failures:
        print(f"  round {i}: {reason}")


if __name__ == "__main__":
    main()
