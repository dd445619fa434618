"""The results store: one JSON line per finished run, appended, never rewritten."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from qdistill.console import console


def _json_safe(value: Any) -> Any:
    """Replace NaN/inf (not valid JSON) with None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


class ResultsStore:
    """``results.jsonl`` in an output directory."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def append(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(_json_safe(record), sort_keys=False, default=str)
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def load(self) -> list[dict[str, Any]]:
        """All records; an unreadable line (e.g. an interrupted write) is reported and skipped."""
        if not self.path.is_file():
            return []
        records = []
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                console.print(
                    f"[yellow]warning:[/] skipping unreadable line {number} of {self.path}"
                )
        return records

    def latest(self) -> list[dict[str, Any]]:
        """The newest record of each run id, in first-seen order."""
        by_id: dict[str, dict[str, Any]] = {}
        for record in self.load():
            by_id[record.get("run_id", f"line-{len(by_id)}")] = record
        return list(by_id.values())

    def completed_ids(self) -> set[str]:
        return {r["run_id"] for r in self.load() if "run_id" in r}
