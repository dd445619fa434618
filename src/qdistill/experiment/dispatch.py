"""Keep an executor busy with the runs still to do, in an order their float models allow,
and decide what a failure means.

A run that fails with a qdistill error (its inputs need fixing: a diverging loss, a
setting that does not fit the model) stops the sweep: no further run starts, the runs in
flight finish and are recorded, then the error is raised. Anything else (a worker killed
or out of memory, a lost Ray node, a bug) is retried once; a second failure is recorded in
failures.jsonl and the sweep goes on without that run and the runs that need its model.
"""

from __future__ import annotations

import json
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from qdistill.errors import QdistillError
from qdistill.experiment.executors import Executor
from qdistill.experiment.planner import Run
from qdistill.experiment.progress import SweepProgress
from qdistill.experiment.record import RunRecord
from qdistill.experiment.schedule import RunScheduler
from qdistill.paths import output_errors


@dataclass(frozen=True)
class RunFailure:
    run_id: str
    name: str
    seed: int
    error: str
    attempts: int
    traceback: str = ""
    at: str = ""


def one_line(error: BaseException) -> str:
    if isinstance(error, BrokenProcessPool):
        return "its worker process died (killed, or out of memory)"
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def record_failures(path: Path, failures: list[RunFailure]) -> None:
    """Append the failures to ``path`` (failures.jsonl), one JSON line each."""
    if not failures:
        return
    with output_errors(), open(path, "a", encoding="utf-8") as handle:
        for failure in failures:
            handle.write(json.dumps(asdict(failure)) + "\n")


def _failure(run: Run, error: BaseException | str, attempts: int) -> RunFailure:
    if isinstance(error, str):
        message, trace = error, ""
    else:
        message, trace = one_line(error), "".join(traceback.format_exception(error))
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return RunFailure(run.run_id, run.name, run.seed, message, attempts, trace, now)


@dataclass
class Dispatch:
    executor: Executor
    scheduler: RunScheduler
    progress: SweepProgress
    on_record: Callable[[RunRecord], None]

    def __post_init__(self) -> None:
        self.in_flight: dict[Future[RunRecord], tuple[Run, int]] = {}
        self.failures: list[RunFailure] = []
        self.stop: QdistillError | None = None

    def _submit(self, run: Run, attempt: int) -> None:
        self.progress.started(run, attempt)
        self.in_flight[self.executor.submit(run)] = (run, attempt)

    def _fill(self) -> None:
        while self.stop is None and len(self.in_flight) < self.executor.workers:
            run = self.scheduler.next_run()
            if run is None:
                break
            self._submit(run, 1)
        for blocked in self.scheduler.take_blocked():
            self.failures.append(_failure(blocked.run, blocked.reason, 0))
            self.progress.failed(blocked.run, blocked.reason, retrying=False)

    def _settle(self, future: Future[RunRecord]) -> None:
        run, attempt = self.in_flight.pop(future)
        error = future.exception()
        if error is None:
            record = future.result()
            self.on_record(record)
            self.scheduler.finished(run)
            self.progress.finished(run, record)
            return
        retry = not isinstance(error, QdistillError) and attempt == 1 and self.stop is None
        self.progress.failed(run, one_line(error), retrying=retry)
        if retry:
            self._submit(run, 2)
            return
        self.scheduler.finished(run, one_line(error))
        if isinstance(error, QdistillError):
            self.stop = self.stop or error
        else:
            self.failures.append(_failure(run, error, attempt))

    def run_all(self) -> list[RunFailure]:
        """Execute every scheduled run; raise the first qdistill error once the runs in
        flight have settled."""
        self._fill()
        while self.in_flight:
            done, _ = wait(self.in_flight, return_when=FIRST_COMPLETED)
            for future in [f for f in self.in_flight if f in done]:  # in submission order
                self._settle(future)
            self._fill()
        if self.stop is not None:
            raise self.stop
        return self.failures
