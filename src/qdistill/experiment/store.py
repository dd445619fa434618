"""The results store: one JSON line per finished run (a RunRecord), appended under a file
lock, never rewritten."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # not on Windows
    fcntl = None

from qdistill.console import console
from qdistill.experiment.migrate import read_record
from qdistill.experiment.record import RunRecord
from qdistill.paths import output_errors

CHUNK = 1 << 16  # read backwards in chunks to find where a torn last line starts


@contextmanager
def _exclusive(handle) -> Iterator[None]:
    """Hold an exclusive lock on the open file, so writers in other processes (another
    tool appending, a driver on another node of a shared folder) wait their turn."""
    if fcntl is None:  # Windows: appends of one small write do not interleave
        yield
        return
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class ResultsStore:
    """``results.jsonl`` in an output directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def append(self, record: RunRecord) -> None:
        """Add one line, synced to disk. A torn last line (a write interrupted by a crash
        or a full disk: a record that never finished) is cut off first, with a warning,
        so the new record cannot merge with it."""
        line = json.dumps(record.to_json(), default=str).encode() + b"\n"
        with output_errors():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a+b") as handle, _exclusive(handle):
                self._cut_torn_tail(handle)
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())

    def _cut_torn_tail(self, handle) -> None:
        size = handle.seek(0, os.SEEK_END)
        if size == 0 or self._byte_at(handle, size - 1) == b"\n":
            return
        keep = size - 1
        while keep > 0 and self._byte_at(handle, keep - 1) != b"\n":
            keep = max(0, keep - CHUNK)
            handle.seek(keep)
            chunk = handle.read(min(CHUNK, size - keep))
            if b"\n" in chunk:
                keep += chunk.rfind(b"\n") + 1
                break
        handle.truncate(keep)
        console.print(
            f"[yellow]warning:[/] removed a torn last line of {self.path} ({size - keep} "
            "bytes of a record whose write was interrupted)"
        )

    @staticmethod
    def _byte_at(handle, offset: int) -> bytes:
        handle.seek(offset)
        return handle.read(1)

    def load(self) -> list[RunRecord]:
        """All records, older schemas migrated. A line that is not JSON (an interrupted
        write) is reported and skipped; a record that cannot be read is a RecordError."""
        if not self.path.is_file():
            return []
        records = []
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                console.print(
                    f"[yellow]warning:[/] skipping unreadable line {number} of {self.path}"
                )
                continue
            records.append(read_record(data, f"{self.path} line {number}"))
        return records

    def latest(self) -> list[RunRecord]:
        """The newest record of each run id, in first-seen order."""
        by_id: dict[str, RunRecord] = {}
        for record in self.load():
            by_id[record.run_id] = record
        return list(by_id.values())

    def completed_ids(self) -> set[str]:
        return {record.run_id for record in self.load()}
