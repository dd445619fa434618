"""A worker's side of parallel execution (a pool process or a Ray task): it builds the
experiment's context once per process and executes runs with its share of the CPU
threads, each run's console output going to ``logs/<run>.log`` instead of the terminal."""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import torch

from qdistill.console import console
from qdistill.experiment.context import RunContext, build_context
from qdistill.experiment.execute import execute_run
from qdistill.experiment.planner import Run, config_hash
from qdistill.experiment.record import RunRecord
from qdistill.experiment.schema import ExperimentConfig
from qdistill.paths import inside

_contexts: dict[tuple[str, str], RunContext] = {}


def _wait_for_exit(pid: int) -> None:
    """Block until process ``pid`` has exited."""
    if hasattr(os, "pidfd_open"):
        try:
            with open(os.pidfd_open(pid), "rb", buffering=0) as handle:
                select.select([handle], [], [])
            return
        except OSError:  # no such process, or pidfds unsupported: poll instead
            pass
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        except PermissionError:
            pass
        time.sleep(1)


def exit_with_driver(driver: int) -> None:
    """End this worker as soon as the sweep's driver has gone (killed with SIGKILL, say):
    a pool worker's parent is the fork server, which outlives the driver while any worker
    lives, so nothing else would stop the worker training on for nobody."""

    def watch() -> None:
        _wait_for_exit(driver)
        os._exit(1)

    threading.Thread(target=watch, name="qdistill-driver-watch", daemon=True).start()


def start_pool_worker(driver: int, threads: int) -> None:
    """A pool process's initializer."""
    exit_with_driver(driver)
    torch.set_num_threads(threads)


def log_path(out_dir: Path, run: Run) -> Path:
    return inside(out_dir / "logs", f"{run.name}-s{run.seed}-{run.run_id}.log")


@contextlib.contextmanager
def output_to(handle: TextIO) -> Iterator[None]:
    """Send the console, print() and warnings to ``handle`` for the duration."""
    previous = console.file
    console.file = handle
    try:
        with contextlib.redirect_stdout(handle), contextlib.redirect_stderr(handle):
            yield
    finally:
        console.file = previous


def context_for(config: ExperimentConfig, out_dir: Path) -> RunContext:
    key = (config_hash(config.model_dump(mode="json")), str(out_dir))
    if key not in _contexts:
        _contexts[key] = build_context(config, out_dir)
    return _contexts[key]


def execute_in_worker(
    config: ExperimentConfig, out_dir: Path, run: Run, threads: int | None = None
) -> RunRecord:
    """Execute ``run`` in this process, its output (and any traceback) in its log file."""
    if threads is not None:
        torch.set_num_threads(threads)
    path = log_path(out_dir, run)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as handle, output_to(handle):
        try:
            return execute_run(context_for(config, out_dir), run)
        except Exception:
            handle.write(traceback.format_exc())
            raise
