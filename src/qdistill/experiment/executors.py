"""Executors run runs: in the driver process, side by side in a local process pool, or as
Ray tasks (experiment/ray_executor.py). Each hands back a future of the run's RunRecord;
the driver alone writes results.jsonl."""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing import forkserver
from pathlib import Path
from typing import Literal, Protocol

import torch

from qdistill.errors import ConfigError
from qdistill.experiment.context import RunContext
from qdistill.experiment.execute import execute_run
from qdistill.experiment.planner import Run
from qdistill.experiment.record import RunRecord
from qdistill.experiment.worker import execute_in_worker, start_pool_worker

ExecutorName = Literal["local", "ray"]


@dataclass(frozen=True)
class Execution:
    """Where runs execute: ``workers`` side by side, locally or on a Ray cluster
    (``address`` joins a running one, e.g. ``auto``; without it a local one starts).
    ``workers`` None means one for ``local`` (in the driver) and the cluster's CPU count
    for ``ray``; ``threads`` (torch threads per run) defaults to an equal share of the
    CPUs. Float results are bit-identical for the same seed and thread count."""

    executor: ExecutorName = "local"
    workers: int | None = None
    address: str | None = None
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.executor not in ("local", "ray"):
            raise ConfigError(f"unknown executor {self.executor!r}; use local or ray")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {self.workers}")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"--threads must be at least 1, got {self.threads}")
        if self.address is not None and self.executor != "ray":
            raise ConfigError("--address joins a Ray cluster; add --executor ray")


def available_cpus() -> int:
    """CPUs this process may use (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def threads_per_worker(workers: int, cpus: int | None = None) -> int:
    """Torch threads for each of ``workers`` runs side by side, so they share the CPUs
    instead of oversubscribing them."""
    return max(1, (cpus or available_cpus()) // workers)


# What every worker imports, loaded once by the fork server (sklearn: the bundled datasets).
WORKER_IMPORTS = ["qdistill.experiment.worker", "sklearn.datasets"]


def start_fork_server() -> multiprocessing.context.BaseContext:
    """The context pool workers start from. Forking the driver after torch started its
    threads can hang; a fork server that has only imported qdistill starts each worker in
    milliseconds. Its imports run in the background, so starting it early hides them."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(WORKER_IMPORTS)
    forkserver.ensure_running()
    return context


class Executor(Protocol):
    workers: int  # runs in flight at once

    def submit(self, run: Run) -> Future[RunRecord]: ...

    def close(self, cancel: bool = False) -> None: ...


class InProcessExecutor:
    """One run at a time in the driver, its output on the driver's terminal."""

    workers = 1

    def __init__(self, ctx: RunContext, threads: int | None = None) -> None:
        self.ctx = ctx
        self._threads_before = torch.get_num_threads()
        if threads is not None:
            torch.set_num_threads(threads)

    def submit(self, run: Run) -> Future[RunRecord]:
        future: Future[RunRecord] = Future()
        try:
            future.set_result(execute_run(self.ctx, run))
        except Exception as err:  # the dispatcher decides what a failure means
            future.set_exception(err)
        return future

    def close(self, cancel: bool = False) -> None:
        torch.set_num_threads(self._threads_before)


class PoolExecutor:
    """``workers`` spawned processes, each with its share of the CPU threads. A pool broken
    by a dead worker (killed, out of memory) is replaced at the next submit."""

    def __init__(self, ctx: RunContext, workers: int, threads: int | None = None) -> None:
        self.config, self.out_dir = ctx.config, Path(ctx.out_dir).resolve()
        self.workers = workers
        self.threads = threads or threads_per_worker(workers)
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.workers,
            mp_context=start_fork_server(),
            initializer=start_pool_worker,
            initargs=(os.getpid(), self.threads),
        )

    def submit(self, run: Run) -> Future[RunRecord]:
        try:
            return self._pool.submit(execute_in_worker, self.config, self.out_dir, run)
        except BrokenProcessPool:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = self._start()
            return self._pool.submit(execute_in_worker, self.config, self.out_dir, run)

    def close(self, cancel: bool = False) -> None:
        self._pool.shutdown(wait=not cancel, cancel_futures=cancel)


def make_executor(execution: Execution, ctx: RunContext) -> Executor:
    if execution.executor == "ray":
        from qdistill.experiment.ray_executor import RayExecutor

        return RayExecutor(ctx, execution.workers, execution.address, execution.threads)
    if execution.workers in (None, 1):
        return InProcessExecutor(ctx, execution.threads)
    return PoolExecutor(ctx, execution.workers, execution.threads)
