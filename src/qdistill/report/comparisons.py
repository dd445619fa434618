"""Cross-run views for reports: method x bit-width pivot, alpha x T grids, KD effects."""

from __future__ import annotations

import re
from dataclasses import dataclass

from qdistill.experiment.record import RunRecord
from qdistill.report.summary import Stat, SummaryRow


def bits_order(label: str) -> tuple:
    """Sort key: float first, then widest weights/activations first (w8a8 before w2a2),
    a uniform plan before its variants ('w4a4+first=w4a8'); other labels last."""
    if label == "float":
        return (0, 0, 0, "")
    match = re.match(r"w(\d+)(?:a(\d+))?", label)
    if match is None:  # 'mixed', 'alloc', 'fp16', ...
        return (2, 0, 0, label)
    return (1, -int(match[1]), -int(match[2] or 32), label)


def pivot_by_bits(rows: list[SummaryRow], metric: str) -> tuple[list[str], list[list[str]]] | None:
    """Rows = student groups, columns = bit settings, cells = metric mean ± SE.

    Only when some group sweeps several bit widths and at least two groups exist; a
    group that also sweeps alpha/T is left out (its grid is shown instead).
    """
    groups: dict[str, dict[str, SummaryRow]] = {}
    for row in rows:
        if row.name == "teacher" or sweeps_kd(rows, row.group):
            continue
        groups.setdefault(row.group, {})[_column(row)] = row
    if len(groups) < 2 or max(len(g) for g in groups.values()) < 2:
        return None
    columns = sorted({bits for group in groups.values() for bits in group}, key=bits_order)
    table = []
    for group, by_bits in groups.items():
        methods = {row.method for row in by_bits.values()}
        # a swept recipe: its stages without the swept values ('prune-channels > finetune')
        method = methods.pop() if len(methods) == 1 else re.sub(r"\([^)]*\)", "", min(methods))
        cells = [
            by_bits[b].metrics[metric].format()
            if b in by_bits and metric in by_bits[b].metrics
            else ""
            for b in columns
        ]
        table.append([group, method, *cells])
    return ["Student", "Method", *columns], table


def _column(row: SummaryRow) -> str:
    """The row's bit setting as its run name spells it: two plans of one student with
    the same label (two allocations, 'alloc-6' and 'alloc-7') keep their own columns."""
    prefix = row.group + "-"
    return row.name[len(prefix) :] if row.name.startswith(prefix) else row.bits


def sweeps_kd(rows: list[SummaryRow], group: str) -> bool:
    """True when ``group`` has runs at several (alpha, temperature) settings."""
    members = [r for r in rows if r.group == group]
    return len({(r.alpha, r.temperature) for r in members}) > 1


@dataclass
class Grid:
    group: str
    bits: str
    alphas: list[float]
    temperatures: list[float]
    values: list[list[Stat | None]]  # [alpha][temperature]


def alpha_temperature_grids(rows: list[SummaryRow], metric: str) -> list[Grid]:
    """One grid per (group, bits) that sweeps both alpha and temperature."""
    cells: dict[tuple[str, str], dict[tuple[float, float], Stat]] = {}
    for row in rows:
        if row.alpha is None or row.temperature is None or metric not in row.metrics:
            continue
        cells.setdefault((row.group, row.bits), {})[(row.alpha, row.temperature)] = row.metrics[
            metric
        ]
    grids = []
    for (group, bits), values in cells.items():
        alphas = sorted({a for a, _ in values})
        temperatures = sorted({t for _, t in values})
        if len(alphas) < 2 or len(temperatures) < 2:
            continue
        matrix = [[values.get((a, t)) for t in temperatures] for a in alphas]
        grids.append(Grid(group, bits, alphas, temperatures, matrix))
    return grids


@dataclass
class Effect:
    student: str
    baseline: str
    bits: str
    alpha: float | None
    temperature: float | None
    student_stat: Stat
    baseline_stat: Stat
    difference: Stat  # paired by seed


def paired_effects(records: list[RunRecord], metric: str) -> list[Effect]:
    """For students with ``compare_to``: metric minus the baseline's, paired by seed and bits."""
    baseline_values: dict[tuple[str, str, int], float] = {}
    for record in records:
        if metric in record.metrics:
            baseline_values[(record.group, record.bits, record.seed)] = record.metrics[metric]
    grouped: dict[tuple, list[tuple[float, float]]] = {}
    for record in records:
        value = record.metrics.get(metric)
        if not record.compare_to or value is None:
            continue
        reference = baseline_values.get((record.compare_to, record.bits, record.seed))
        if reference is None:
            continue
        key = (record.group, record.compare_to, record.bits, record.alpha, record.temperature)
        grouped.setdefault(key, []).append((value, reference))
    return [
        Effect(
            group,
            baseline,
            bits,
            alpha,
            temperature,
            Stat.of([v for v, _ in pairs]),
            Stat.of([r for _, r in pairs]),
            Stat.of([v - r for v, r in pairs]),
        )
        for (group, baseline, bits, alpha, temperature), pairs in grouped.items()
    ]


def unpaired_comparisons(records: list[RunRecord], effects: list[Effect]) -> list[tuple[str, str]]:
    """(student, compare_to) pairs asked for that found no baseline run with the same
    bits and seed, so a comparison never silently vanishes from the report."""
    paired = {(e.student, e.baseline) for e in effects}
    asked = {(record.group, record.compare_to) for record in records if record.compare_to}
    return sorted(asked - paired)
