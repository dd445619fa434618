"""The report's comparison with published numbers: each reference value beside ours (mean
± standard error over seeds) for the same run, and what one training epoch took here."""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from typing import Any

from qdistill.experiment.record import RunRecord
from qdistill.experiment.schema import ReferenceBlock
from qdistill.report.summary import Stat
from qdistill.report.tables import markdown_table
from qdistill.tasks import Metric


def epoch_seconds(details: Any) -> Iterator[float]:
    """Every ``epoch_s`` in the training histories nested anywhere in stage details."""
    if isinstance(details, dict):
        for key, value in details.items():
            if key == "history" and isinstance(value, list):
                yield from (e["epoch_s"] for e in value if isinstance(e, dict) and "epoch_s" in e)
            else:
                yield from epoch_seconds(value)
    elif isinstance(details, list):
        for value in details:
            yield from epoch_seconds(value)


def _matching(records: list[RunRecord], name: str) -> list[RunRecord]:
    """A run name's records, or a student's (all its sweep points)."""
    exact = [r for r in records if r.name == name]
    return exact or [r for r in records if r.group == name]


def _row(
    records: list[RunRecord], name: str, key: str, published: float, comparable: bool
) -> list[str]:
    runs = _matching(records, name)
    ours = Stat.of([r.metrics.get(key) for r in runs])
    seconds = [s for r in runs for stage in r.stages for s in epoch_seconds(stage.details)]
    return [
        name,
        f"{published:.2f}",
        ours.format() if ours else "not run yet",
        f"{ours.mean - published:+.2f}" if ours and comparable else "",
        f"{statistics.median(seconds):.1f}" if seconds else "",
    ]


def _other_data(records: list[RunRecord], block: ReferenceBlock) -> str | None:
    """The dataset these runs used when it is not the one the numbers were measured on."""
    used = {str(r.data.get("name")) for r in records if r.data.get("name")}
    if block.data is None or not used or used == {block.data}:
        return None
    return ", ".join(sorted(used))


def references_section(
    records: list[RunRecord], references: list[ReferenceBlock], headline: Metric
) -> list[str]:
    if not references:
        return []
    lines = ["", "## Published reference numbers"]
    for block in references:
        key = block.metric or headline.key
        other = _other_data(records, block)
        table = [
            _row(records, name, key, value, other is None) for name, value in block.values.items()
        ]
        lines += [
            "",
            f"{block.source}: `{key}` as published, and ours (mean ± standard error over "
            "seeds) for the same run of this experiment; s/epoch is the median wall time "
            "of one training epoch here (all of the run's training stages).",
        ]
        if other is not None:
            lines.append(
                f"These runs used {other}, not {block.data}: the published numbers are "
                "shown for reference only, with no difference."
            )
        lines += [
            "",
            markdown_table(["Run", "Published", "Ours", "Ours - published", "s/epoch"], table),
        ]
    return lines
