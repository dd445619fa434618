"""Report sections comparing runs: method x bit width, alpha x temperature grids, and
paired comparisons against a ``compare_to`` student."""

from __future__ import annotations

from pathlib import Path

from qdistill.experiment.record import RunRecord
from qdistill.report.comparisons import (
    Grid,
    alpha_temperature_grids,
    bits_order,
    paired_effects,
    pivot_by_bits,
    unpaired_comparisons,
)
from qdistill.report.plots import plot_grid
from qdistill.report.summary import Stat, SummaryRow
from qdistill.report.tables import drop_empty_columns, markdown_table
from qdistill.tasks import Metric


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def pivot_section(rows: list[SummaryRow], metric: Metric) -> list[str]:
    pivot = pivot_by_bits(rows, metric.key)
    if pivot is None:
        return []
    headers, table = pivot
    bit_widths = all(bits_order(column)[0] < 2 for column in headers[2:])
    return [
        "",
        "## Method x bit width" if bit_widths else "## Students x sweep point",
        "",
        f"{metric.label}, mean ± standard error over seeds.",
        "",
        markdown_table(headers, table),
    ]


def _grid_section(grid: Grid, metric: Metric, out_dir: Path) -> list[str]:
    name = f"grid_{grid.group}_{grid.bits}.png".replace("/", "_")
    plot_grid(grid, out_dir / name, metric)
    cells = list(zip(grid.alphas, grid.values, strict=True))
    table = [[f"{a:g}", *[c.format() if c else "" for c in row]] for a, row in cells]
    best = max(
        (c.mean, a, t) for a, row in cells for t, c in zip(grid.temperatures, row, strict=True) if c
    )
    headers = ["alpha \\ T", *[f"{t:g}" for t in grid.temperatures]]
    return [
        "",
        f"## Alpha x temperature: {grid.group} ({grid.bits})",
        "",
        markdown_table(headers, table),
        "",
        f"Best: alpha {best[1]:g}, T {best[2]:g} ({best[0]:.2f}).",
        "",
        f"![alpha x temperature]({name})",
    ]


def grid_sections(rows: list[SummaryRow], metric: Metric, out_dir: Path) -> list[str]:
    return [
        line
        for grid in alpha_temperature_grids(rows, metric.key)
        for line in _grid_section(grid, metric, out_dir)
    ]


def reading(difference: Stat) -> str:
    """What a paired difference says: a gain or loss beyond 2 SE, or noise."""
    if difference.se is None:
        return "one pair: no SE, no verdict"
    if abs(difference.mean) <= 2 * difference.se:
        return "within noise (|Δ| ≤ 2 SE)"
    return "gain (> 2 SE)" if difference.mean > 0 else "loss (> 2 SE)"


def paired_section(records: list[RunRecord], metric: Metric) -> list[str]:
    effects = paired_effects(records, metric.key)
    lines: list[str] = []
    if effects:
        table = [
            [
                e.student,
                e.baseline,
                e.bits,
                _fmt(e.alpha),
                _fmt(e.temperature),
                e.student_stat.format(),
                e.baseline_stat.format(),
                e.difference.format(),
                str(e.difference.n),
                reading(e.difference),
            ]
            for e in effects
        ]
        headers = ["Student", "Baseline", "Bits", "alpha", "T"]
        headers += ["Student", "Baseline", "Δ (gain)", "Pairs", "Reading"]
        lines += [
            "",
            "## Paired comparisons",
            "",
            f"Difference in {metric.label} against the `compare_to` student (the effect of "
            "what the two recipes differ in: distillation, equalization, ...), paired by "
            "seed and bit width; ± is the standard error (SE) of the paired differences. A "
            "difference counts as a gain or a loss only beyond twice its SE; within that it "
            "cannot be told from seed noise.",
            "",
            markdown_table(*drop_empty_columns(headers, table)),
        ]
    unpaired = unpaired_comparisons(records, effects)
    if unpaired:
        if not effects:
            lines += ["", "## Paired comparisons"]
        shown = ", ".join(f"{student} vs {baseline}" for student, baseline in unpaired)
        lines += [
            "",
            f"No pairs for {shown}: the `compare_to` student has no run with the same "
            "bits label and seed.",
        ]
    return lines
