"""What a sweep shows while it runs: a line as each run starts, finishes or fails, and with
runs side by side on a terminal one live view of them all (running, done, failed, ETA)."""

from __future__ import annotations

from types import TracebackType

from rich.progress import TaskID

from qdistill.console import console, progress_bar
from qdistill.experiment.planner import Run
from qdistill.experiment.record import RunRecord
from qdistill.tasks import Task


def run_label(run: Run) -> str:
    return f"{run.name} seed {run.seed}"


class SweepProgress:
    """Counts and lines for ``total`` runs; ``live`` adds the live view (only when no run
    draws its own progress bars on the same terminal)."""

    def __init__(self, total: int, task: Task, live: bool) -> None:
        self.total, self.headline, self.unit = total, task.headline, task.unit
        self.started_count = self.done = self.failed_count = 0
        self._view = progress_bar(transient=False) if live else None
        self._overall: TaskID | None = None
        self._rows: dict[str, TaskID] = {}

    def __enter__(self) -> SweepProgress:
        if self._view is not None:
            self._view.start()
            self._overall = self._view.add_task("runs", total=self.total, status="")
        return self

    def __exit__(
        self, kind: type | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._view is not None:
            self._view.stop()

    def _print(self, line: str) -> None:
        (self._view.console if self._view is not None else console).print(line)

    def _refresh(self) -> None:
        if self._view is None or self._overall is None:
            return
        running = len(self._rows)
        status = f"{running} running, {self.done} done, {self.failed_count} failed"
        self._view.update(self._overall, completed=self.done + self.failed_count, status=status)

    def started(self, run: Run, attempt: int) -> None:
        self.started_count += attempt == 1
        count = f"{self.started_count}/{self.total}" if attempt == 1 else f"try {attempt}"
        self._print(f"[bold cyan]\\[{count}] {run_label(run)}[/] ({run.method}, {run.run_id})")
        if self._view is not None:
            row = self._view.add_task(f"  {run_label(run)}", total=None, status="")
            self._rows[run.run_id] = row
        self._refresh()

    def _ended(self, run: Run) -> None:
        row = self._rows.pop(run.run_id, None)
        if row is not None and self._view is not None:
            self._view.remove_task(row)

    def finished(self, run: Run, record: RunRecord) -> None:
        self._ended(run)
        self.done += 1
        value = record.metrics[self.headline.key]
        self._print(
            f"{run_label(run)}: {self.headline.key.replace('_', ' ')} {value:.2f}{self.unit}  "
            f"size {record.size_bytes / 1024:.1f} KiB  {record.wall_s:.1f}s"
        )
        self._refresh()

    def failed(self, run: Run, reason: str, retrying: bool) -> None:
        self._ended(run)
        self.failed_count += not retrying
        then = "; trying it once more" if retrying else ""
        self._print(f"[red]{run_label(run)} failed:[/] {reason}{then}")
        self._refresh()
