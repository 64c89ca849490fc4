"""Searches on a real local Ray cluster (and local processes): the same results as one after another, and a
killed worker's search resumed from its last recorded trial."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from prune_gym.benchmarks.study import SOURCE_RUN, Study, Transfer, history_of, job_status, run_study
from prune_gym.cluster import ProcessBackend, open_backend
from prune_gym.errors import PruneGymError
from prune_gym.history import HistoryStore

RAY = str(Path(sys.executable).with_name("ray"))


@pytest.fixture(scope="module")
def ray_cluster():
    """`ray start --head` on loopback with 2 CPUs; its address."""
    pytest.importorskip("ray")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run([RAY, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", "2",
                    "--include-dashboard", "false", "--object-store-memory", str(100 * 2**20)],
                   check=True, capture_output=True, env=env, timeout=180)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([RAY, "stop", "--force"], capture_output=True, env=env, timeout=120)


@pytest.fixture
def settings(tiny_checkpoint, fashion_root):
    return {"device": "cpu", "checkpoint": str(tiny_checkpoint), "data_root": str(fashion_root),
            "env_kwargs": {"calibration_images": 100}, "progress": False, "poll_seconds": 0.5, "threads": 1}


def runs(out: Path, study: Study) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    found = {}
    for job in study.jobs():
        with HistoryStore(history_of(out, job)) as store:
            run = store.read_run(SOURCE_RUN)
        found[job.key] = (run.actions, run.accuracies)
    return found


def test_a_study_on_a_ray_cluster_equals_the_same_study_run_one_search_at_a_time(ray_cluster, settings, tmp_path):
    study = Study("fashion-mnist", (Transfer("resnet20", 0.5, "resnet20", 0.3),), methods=("assistant",),
                  seeds=(0,), trials=3)
    on_ray = run_study(study, tmp_path / "ray", jobs=2, backend="ray", address=ray_cluster, **settings)
    one_by_one = run_study(study, tmp_path / "sequential", jobs=1, backend="processes", **settings)
    assert set(on_ray.outcomes.values()) == set(one_by_one.outcomes.values()) == {"done"}
    assert len(on_ray.outcomes) == 3  # the baseline at 0.3, the source at 0.5, the transfer
    ray_runs, sequential_runs = runs(tmp_path / "ray", study), runs(tmp_path / "sequential", study)
    for key, (actions, accuracies) in ray_runs.items():
        assert np.array_equal(actions, sequential_runs[key][0]) and np.array_equal(accuracies, sequential_runs[key][1])


@pytest.mark.parametrize("backend", ["ray", "processes"])
def test_a_search_whose_worker_is_killed_resumes_from_its_last_trial(request, backend, settings, tmp_path):
    address = request.getfixturevalue("ray_cluster") if backend == "ray" else None
    study = Study("fashion-mnist", (), baselines=(("resnet20", 0.5),), seeds=(0,), trials=14)
    (job,) = study.jobs()
    history = history_of(tmp_path, job)
    outcome = {}
    sweep = threading.Thread(target=lambda: outcome.update(
        run_study(study, tmp_path, jobs=1, backend=backend, address=address, **settings).outcomes))
    sweep.start()
    deadline = time.monotonic() + 300
    while job_status(history)[1] < 4 and time.monotonic() < deadline:
        time.sleep(0.2)
    with HistoryStore(history) as store:
        before = store.read_run(SOURCE_RUN)
    worker = int(Path(f"{history}.lock").read_text())  # the history writer: the worker running the search
    os.kill(worker, signal.SIGKILL)
    sweep.join(timeout=600)

    assert outcome == {job.key: "done"}
    with HistoryStore(history) as store:
        (info,) = store.find_runs()
        run = store.read_run(SOURCE_RUN)
    assert info.status == "finished" and run.n_trials == 14  # nothing lost, nothing twice
    assert len(info.resume_times) == 1 and int(Path(f"{history}.lock").read_text()) != worker  # rerun elsewhere
    n = before.n_trials
    assert np.array_equal(run.actions[:n], before.actions) and np.array_equal(run.accuracies[:n], before.accuracies)


def test_the_backend_is_chosen_as_asked_and_said():
    backend = open_backend("processes", workers=2, threads=1)
    assert isinstance(backend, ProcessBackend) and backend.description == "2 local processes, 1 thread(s) each"
    with pytest.raises(PruneGymError, match="unknown backend"):
        open_backend("slurm")
    with pytest.raises(PruneGymError, match="needs the ray backend"):
        open_backend("processes", address="127.0.0.1:6379")


def refuse(*args, threads: int, device: str) -> None:
    raise ValueError(f"bad settings for {args[0]}")


def test_a_search_that_raises_fails_at_once_with_its_error():
    with ProcessBackend(workers=2, threads=1) as backend:
        tasks = [backend.submit(refuse, name) for name in ("a", "b")]
        backend.wait(tasks, poll_seconds=0.1)
    assert [t.error for t in tasks] == ["ValueError: bad settings for a", "ValueError: bad settings for b"]
    assert [t.attempts for t in tasks] == [1, 1]  # an error is not a crash: no rerun


def linger(pid_file: str, *, threads: int, device: str) -> None:
    Path(pid_file).write_text(str(os.getpid()))
    time.sleep(120)


def test_a_terminated_driver_stops_its_searches(tmp_path):
    pid_file = tmp_path / "worker.pid"
    driver = subprocess.Popen([sys.executable, "-c", (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from prune_gym.cluster import ProcessBackend\n"
        "from test_cluster import linger\n"
        "with ProcessBackend(workers=1, threads=1) as backend:\n"
        "    backend.wait([backend.submit(linger, sys.argv[2])], poll_seconds=0.1)\n"),
        str(Path(__file__).parent), str(pid_file)])
    try:
        deadline = time.monotonic() + 60
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline and driver.poll() is None, "the search never started"
            time.sleep(0.1)
        worker = int(pid_file.read_text())
        driver.send_signal(signal.SIGTERM)
        assert driver.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        driver.kill()  # a no-op once it has exited
    with pytest.raises(ProcessLookupError):  # joined by the driver: not even a zombie is left
        os.kill(worker, 0)
