"""Runs as Ray tasks: on a cluster already running (``address``, e.g. ``auto``) or on a
local Ray instance started for the sweep. Each task gets its share of the CPUs (and of
the GPUs when the experiment's device may use one); artefacts are written to the output
folder, which on a multi-node cluster must be a path every node shares with the driver."""

from __future__ import annotations

import os
from concurrent.futures import Future
from pathlib import Path

from qdistill.errors import ConfigError
from qdistill.experiment.context import RunContext
from qdistill.experiment.planner import Run
from qdistill.experiment.record import RunRecord
from qdistill.experiment.worker import execute_in_worker
from qdistill.models.user_module import TRUST_VARIABLE


def _ray():
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--executor ray needs Ray: pip install 'qdistill[ray]' (or pip install ray)"
        ) from None
    return ray


def _unwrapped(future: Future, ray) -> Future[RunRecord]:
    """A future holding the task's own exception rather than Ray's wrapper (whose text
    is the whole remote traceback)."""
    result: Future[RunRecord] = Future()

    def copy(done: Future) -> None:
        error = done.exception()
        if error is None:
            result.set_result(done.result())
        elif isinstance(error, ray.exceptions.RayTaskError) and error.cause is not None:
            result.set_exception(error.cause)
        else:
            result.set_exception(error)

    future.add_done_callback(copy)
    return result


class RayExecutor:
    def __init__(
        self, ctx: RunContext, workers: int | None, address: str | None, threads: int | None
    ) -> None:
        self._ray = ray = _ray()
        self.config, self.out_dir = ctx.config, Path(ctx.out_dir).resolve()
        trusted = os.environ.get(TRUST_VARIABLE)
        ray.init(
            address=address,
            runtime_env={"env_vars": {TRUST_VARIABLE: trusted}} if trusted else None,
            include_dashboard=False,
            log_to_driver=False,  # each run's output is in its log file
            logging_level="warning",
            ignore_reinit_error=True,
        )
        resources = ray.cluster_resources()
        cpus, gpus = int(resources.get("CPU", 1)), resources.get("GPU", 0.0)
        self.workers = workers or cpus
        self.threads = threads or max(1, cpus // self.workers)
        uses_gpu = ctx.task.device.type == "cuda" and gpus > 0
        self._task = ray.remote(execute_in_worker).options(
            num_cpus=self.threads,
            num_gpus=min(1.0, gpus / self.workers) if uses_gpu else 0,
            max_retries=0,  # the dispatcher retries a failed run once, whatever the cause
        )

    def submit(self, run: Run) -> Future[RunRecord]:
        ref = self._task.remote(self.config, self.out_dir, run, self.threads)
        return _unwrapped(ref.future(), self._ray)

    def close(self, cancel: bool = False) -> None:
        self._ray.shutdown()
