"""Per-image quality of a super-resolution experiment: each test image's metric for the
task's baselines (bicubic) and every configuration, with differences to the baseline and
to the float teacher (set means hide images where a model falls below bicubic)."""

from __future__ import annotations

from qdistill.report.summary import SummaryRow
from qdistill.report.tables import markdown_table
from qdistill.tasks import Metric, Task
from qdistill.tasks.base import per_item_key


def _images(rows: list[SummaryRow], metric: Metric) -> list[str]:
    """The test images any row recorded ``metric`` for, in recorded order."""
    marker = f"{metric.key}@"
    names = (key[len(marker) :] for row in rows for key in row.metrics if key.startswith(marker))
    return list(dict.fromkeys(names))


def _mean(row: SummaryRow, key: str) -> float | None:
    stat = row.metrics.get(key)
    return None if stat is None else stat.mean


def _cell(value: float | None, references: list[float | None], metric: Metric) -> str:
    if value is None:
        return ""
    deltas = [f"{value - r:+.{metric.digits}f}" for r in references if r is not None]
    return f"{value:.{metric.digits}f}" + (f" ({' / '.join(deltas)})" if deltas else "")


def _table(rows: list[SummaryRow], task: type[Task], metric: Metric) -> list[str]:
    images = _images(rows, metric)
    teacher = next((r for r in rows if r.name == "teacher"), None)
    baseline = task.baselines[0] if task.baselines else None
    lines = []
    for image in images:
        key = per_item_key(metric.key, image)
        source = next((r for r in rows if baseline and baseline.prefix + key in r.metrics), None)
        reference = _mean(source, baseline.prefix + key) if source else None
        float_value = _mean(teacher, key) if teacher else None
        cells = [image, _cell(reference, [], metric)]
        for row in rows:
            compared = [reference] + ([float_value] if row is not teacher else [])
            cells.append(_cell(_mean(row, key), compared, metric))
        lines.append(cells)
    headers = ["Image", baseline.name if baseline else "", *(r.name for r in rows)]
    return [markdown_table(headers, lines)]


def per_image_section(rows: list[SummaryRow], task: type[Task]) -> list[str]:
    """A table per ``task.per_image`` metric; nothing when no run recorded one."""
    metrics = [m for m in task.per_image if _images(rows, m)]
    if not metrics:
        return []
    baseline = task.baselines[0].name if task.baselines else "the baseline"
    lines = [
        "",
        "## Quality per test image",
        "",
        f"Each test image's value (mean over seeds) and in brackets its difference to "
        f"{baseline} and, for every run but the teacher, to the float teacher.",
    ]
    for metric in metrics:
        lines += ["", f"### {metric.label}", "", *_table(rows, task, metric)]
    return lines
