"""The results store: one JSON line per finished run (a RunRecord), appended, never
rewritten."""

from __future__ import annotations

import json
import os
from pathlib import Path

from qdistill.console import console
from qdistill.experiment.migrate import read_record
from qdistill.experiment.record import RunRecord


class ResultsStore:
    """``results.jsonl`` in an output directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def append(self, record: RunRecord) -> None:
        """Add one line, synced to disk; a torn last line (an interrupted write) is ended
        first so the new record stays readable."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(record.to_json(), default=str)
        with open(self.path, "a+b") as handle:
            torn = handle.tell() > 0 and not self._ends_with_newline(handle)
            handle.write(("\n" if torn else "").encode() + line.encode() + b"\n")
            handle.flush()
            os.fsync(handle.fileno())

    @staticmethod
    def _ends_with_newline(handle) -> bool:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"

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
