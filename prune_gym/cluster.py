"""Where a batch of searches runs: on a Ray cluster, or in processes on this machine.

Source selection and the benchmark study hand their searches to a `Backend` as calls of
one picklable function, each in a process of its own, and watch them through the history
files the searches write (one file per search: never two writers on one file).
* `RayBackend`: tasks on the Ray cluster at `address` (or $RAY_ADDRESS), else on a local
  Ray instance started for the occasion. A task asks for a GPU when the cluster has some;
  Ray reruns a task whose worker died.
* `ProcessBackend`: processes on this machine, `workers` at a time; a process that dies
  is started again. They are forked from a server that imported the search's module once
  (spawned where the platform has no fork server): a fresh interpreter would spend seconds
  importing torch for every search.
`open_backend` takes Ray when it is installed (or an address is given), processes
otherwise, and says which. A rerun must not redo work: a search resumes its interrupted
run from the last recorded trial (`prune_gym.agents.loop.search_to_completion`).
On a cluster of several machines the history files must be on a file system they share.
"""

from __future__ import annotations

import importlib.util
import multiprocessing
import os
import signal
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from prune_gym.errors import PruneGymError

RETRIES = 3  # reruns of a search whose process died


@dataclass(eq=False)
class Task:
    """A submitted call; `error` is set when it failed for good, `done` when it is over either way."""

    fn: Callable[..., Any]
    args: tuple
    done: bool = False
    error: str | None = None
    handle: Any = field(default=None, repr=False)  # the backend's own: a process, a Ray object ref
    attempts: int = 0


class Backend(ABC):
    description: str  # for the user: where the searches run

    def __init__(self, threads: int):
        self.threads = threads  # CPU threads per search
        self._previous_sigterm: Any = None

    @abstractmethod
    def submit(self, fn: Callable[..., Any], *args: Any) -> Task:
        """Start (or queue) fn(*args, threads=..., device=...) in a process of its own."""

    @abstractmethod
    def poll(self, tasks: Sequence[Task]) -> None:
        """Update each task's `done` and `error`; start queued tasks when there is room."""

    @abstractmethod
    def cancel(self, task: Task) -> None:
        """Stop the task now (its search's history keeps what it recorded)."""

    def close(self) -> None:
        """Stop every task still running and release the backend."""

    def wait(self, tasks: Sequence[Task], poll_seconds: float = 1.0) -> None:
        """Block until every task is done."""
        while True:
            self.poll(tasks)
            if all(t.done for t in tasks):
                return
            time.sleep(poll_seconds)

    def __enter__(self) -> Backend:
        """Within `with`, SIGTERM (`kill`, a job scheduler) unwinds like Ctrl-C, so that `close` stops the
        searches: they would otherwise run on, orphaned, and hold their history files' writer locks."""
        if threading.current_thread() is threading.main_thread():
            self._previous_sigterm = signal.signal(signal.SIGTERM, _exit_on_signal)
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            self.close()
        finally:
            if self._previous_sigterm is not None:
                signal.signal(signal.SIGTERM, self._previous_sigterm)
                self._previous_sigterm = None


def _exit_on_signal(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


class ProcessBackend(Backend):
    """Spawned processes on this machine, `workers` at a time, dealt over the GPUs when there are several."""

    def __init__(self, workers: int, device: str = "auto", threads: int | None = None, retries: int = RETRIES):
        super().__init__(threads or max(1, (os.cpu_count() or 1) // workers))
        self.workers, self.retries = workers, retries
        gpus = torch.cuda.device_count() if device == "auto" else 0
        self.devices = [f"cuda:{i}" for i in range(gpus)] if gpus > 1 else [device]
        self.description = f"{workers} local process{'es' if workers > 1 else ''}, {self.threads} thread(s) each"
        forkserver = "forkserver" in multiprocessing.get_all_start_methods()
        self._context = multiprocessing.get_context("forkserver" if forkserver else "spawn")
        self._queue: list[Task] = []
        self._running: list[Task] = []
        self._started = 0

    def submit(self, fn: Callable[..., Any], *args: Any) -> Task:
        task = Task(fn, args)
        self._queue.append(task)
        self._fill()
        return task

    def poll(self, tasks: Sequence[Task]) -> None:
        for task in list(self._running):
            process, errors = task.handle
            if process.is_alive():
                continue
            process.join()
            self._running.remove(task)
            error = _received(errors)
            errors.close()
            if process.exitcode == 0:
                task.done = True
            elif error is not None:  # the function raised: a rerun would raise again
                task.done, task.error = True, error
            elif task.attempts > self.retries:
                task.done, task.error = True, f"its process died {task.attempts} times (exit code {process.exitcode})"
            else:
                self._queue.insert(0, task)  # died (killed, out of memory): run it again, it resumes
        self._fill()

    def cancel(self, task: Task) -> None:
        if task in self._queue:
            self._queue.remove(task)
        if task in self._running:
            process, errors = task.handle
            process.terminate()
            process.join()
            errors.close()
            self._running.remove(task)
        task.done = True

    def close(self) -> None:
        for task in list(self._running):
            self.cancel(task)
        self._queue.clear()

    def _fill(self) -> None:
        while self._queue and len(self._running) < self.workers:
            task = self._queue.pop(0)
            if self._context.get_start_method() == "forkserver" and task.fn.__module__ != "__main__":
                self._context.set_forkserver_preload([task.fn.__module__])  # read when the server starts
            receive, send = self._context.Pipe(duplex=False)
            device = self.devices[self._started % len(self.devices)]
            process = self._context.Process(target=_run, daemon=True, args=(
                task.fn, task.args, self.threads, device, send, dict(os.environ), os.getcwd()))
            process.start()
            send.close()
            task.handle, task.attempts = (process, receive), task.attempts + 1
            self._running.append(task)
            self._started += 1


def _received(errors: Any) -> str | None:
    """The error a process sent before exiting, or None (it succeeded, or died without a word)."""
    try:
        return errors.recv() if errors.poll() else None
    except EOFError:
        return None


def _run(fn: Callable[..., Any], args: tuple, threads: int, device: str, errors: Any, environ: dict[str, str],
         cwd: str) -> None:
    # A forked process has the fork server's environment and folder, not those of the caller now.
    os.environ.clear()
    os.environ.update(environ)
    os.chdir(cwd)
    try:
        fn(*args, threads=threads, device=device)
    except BaseException as exc:
        errors.send(f"{type(exc).__name__}: {exc}")
        raise SystemExit(1) from None


class RayBackend(Backend):
    """Ray tasks on the cluster at `address`, or on a local instance of `workers * threads` CPUs.

    Every search is submitted at once; Ray runs as many as the cluster's CPUs (and GPUs) allow.
    """

    def __init__(self, address: str | None = None, workers: int = 1, device: str = "auto",
                 threads: int | None = None, retries: int = RETRIES):
        import ray  # an optional extra: pip install prune-gym[ray]

        self._ray = ray
        address = address or os.environ.get("RAY_ADDRESS")
        # On this machine the searches share its cores; on a cluster each asks for one CPU unless told.
        threads = threads or (1 if address else max(1, (os.cpu_count() or 1) // workers))
        if address:
            ray.init(address=address, log_to_driver=False)
            where = f"the Ray cluster at {address}"
        else:
            ray.init(num_cpus=workers * threads, include_dashboard=False, log_to_driver=False)
            where = f"a local Ray instance of {workers * threads} CPUs"
        super().__init__(threads)
        has_gpus = ray.cluster_resources().get("GPU", 0) > 0 and device in ("auto", "cuda")
        self.device, self.gpus = ("cuda", 1) if has_gpus else (device, 0)
        self.description = f"{where}, {threads} CPU(s){' and a GPU' if has_gpus else ''} per search"
        self._submitted: list[Task] = []
        self._remote = ray.remote(_run_on_ray).options(num_cpus=threads, num_gpus=self.gpus, max_retries=retries,
                                                       retry_exceptions=False)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Task:
        task = Task(fn, args, handle=self._remote.remote(fn, args, self.threads, self.device), attempts=1)
        self._submitted.append(task)
        return task

    def poll(self, tasks: Sequence[Task]) -> None:
        pending = [t for t in tasks if not t.done]
        if not pending:
            return
        ready, _ = self._ray.wait([t.handle for t in pending], num_returns=len(pending), timeout=0)
        for task in (t for t in pending if t.handle in ready):
            task.done = True
            try:
                self._ray.get(task.handle)
            except Exception as exc:  # the task's error, raised here by Ray
                task.error = f"{type(exc).__name__}: {exc}"

    def cancel(self, task: Task) -> None:
        self._ray.cancel(task.handle, force=True)
        task.done = True

    def close(self) -> None:
        """Cancel what still runs (a cluster outlives this driver), then disconnect."""
        self.poll(self._submitted)
        for task in self._submitted:
            if not task.done:
                self.cancel(task)
        self._ray.shutdown()


def _run_on_ray(fn: Callable[..., Any], args: tuple, threads: int, device: str) -> None:
    fn(*args, threads=threads, device=device)


def open_backend(kind: str = "auto", address: str | None = None, workers: int = 1, device: str = "auto",
                 threads: int | None = None) -> Backend:
    """'ray', 'processes', or 'auto': Ray when it is installed or an address is given, processes otherwise."""
    if kind not in ("auto", "ray", "processes"):
        raise PruneGymError(f"unknown backend {kind!r}; choose auto, ray or processes")
    address = address or os.environ.get("RAY_ADDRESS")
    if kind == "processes" and address:
        raise PruneGymError("a Ray address needs the ray backend, not processes")
    if kind == "auto":
        kind = "ray" if address or _ray_installed() else "processes"
    if kind == "ray" and not _ray_installed():
        raise PruneGymError("the ray backend needs Ray: pip install 'prune-gym[ray]'")
    if kind == "ray":
        return RayBackend(address, workers, device, threads)
    return ProcessBackend(workers, device, threads)


def _ray_installed() -> bool:
    return importlib.util.find_spec("ray") is not None
