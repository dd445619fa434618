"""The results table (report and terminal): one row per configuration, with the columns
the task declares, plus a row per task baseline (e.g. bicubic upscaling)."""

from __future__ import annotations

import math

from rich.table import Table

from qdistill.experiment.planner import TEACHER
from qdistill.experiment.record import RunRecord
from qdistill.report.summary import Stat, SummaryRow, summarize
from qdistill.tasks import TASKS, Metric, Task


def task_of(records: list[RunRecord]) -> type[Task]:
    """The task the records were run on (one experiment is one task)."""
    return TASKS.get(records[0].task if records else "classification")


def _cell(stat: Stat | None, metric: Metric) -> str:
    return stat.format(metric.digits) if stat else ""


def _delta(row: SummaryRow, teacher: SummaryRow | None, key: str) -> str:
    value = row.metrics.get(key)
    if value is None or teacher is None or row is teacher or key not in teacher.metrics:
        return ""
    return f"{value.mean - teacher.metrics[key].mean:+.2f}"


def _headers(task: type[Task]) -> list[str]:
    quality = [m.label for m in task.quality]
    return [
        "Run",
        "Model",
        "Method",
        "Bits",
        "alpha",
        "Seeds",
        *quality,
        "Δ vs teacher",
        task.integer.label,
        "Size (KiB)",
        "Compression",
        "Time (s)",
    ]


def _row(task: type[Task], row: SummaryRow, teacher: SummaryRow | None) -> list[str]:
    return [
        row.name,
        row.model,
        row.method,
        row.bits,
        "" if row.alpha is None else f"{row.alpha:g}",
        str(len(row.seeds)),
        *[_cell(row.metrics.get(m.key), m) for m in task.quality],
        _delta(row, teacher, task.headline.key),
        _cell(row.metrics.get(task.integer.key), task.integer),
        f"{row.size_bytes / 1024:.1f}",
        f"{row.compression:.1f}x" if math.isfinite(row.compression) else "",
        row.wall_s.format(1) if row.wall_s else "",
    ]


def _baseline_rows(task: type[Task], rows: list[SummaryRow]) -> list[list[str]]:
    """One row per task baseline, from the first row that recorded it."""
    lines = []
    for baseline in task.baselines:
        prefix = baseline.prefix
        source = next((r for r in rows if prefix + task.headline.key in r.metrics), None)
        if source is not None:
            cells = [_cell(source.metrics.get(prefix + m.key), m) for m in task.quality]
            blank = [""] * 6
            lines.append([baseline.name, "", baseline.method, *blank[3:], *cells, *blank])
    return lines


def results_rows(records: list[RunRecord]) -> tuple[list[str], list[list[str]]]:
    """Headers and rows of the results table (every column; baselines last)."""
    task = task_of(records)
    rows = summarize(records)
    teacher = next((r for r in rows if r.name == TEACHER), None)
    table = [_row(task, row, teacher) for row in rows] + _baseline_rows(task, rows)
    return _headers(task), table


def results_table(records: list[RunRecord]) -> Table:
    """A rich table for the terminal, with the columns that vary most."""
    task = task_of(records)
    headers, rows = results_rows(records)
    quality = [m.label for m in task.quality if m.key in task.console]
    integer = [task.integer.label] if task.integer.key in task.console else []
    shown = ["Run", "Method", "Bits", "Seeds", *quality, "Δ vs teacher", *integer]
    shown += ["Size (KiB)", "Compression"]
    keep = [headers.index(h) for h in shown]
    table = Table(title="Results (mean ± standard error over seeds)")
    for header in shown:
        table.add_column(header, justify="left" if header in ("Run", "Method") else "right")
    for row in rows:
        table.add_row(*(row[i] for i in keep))
    return table
