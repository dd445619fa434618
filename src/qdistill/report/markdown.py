"""Markdown report and console table of an experiment's results."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.table import Table

from qdistill.report.comparisons import (
    alpha_temperature_grids,
    distillation_effects,
    pivot_by_bits,
)
from qdistill.report.plots import plot_accuracy_vs_bits, plot_grid
from qdistill.report.summary import SummaryRow, summarize

PRIMARY = "test_acc"


def _teacher_row(rows: list[SummaryRow]) -> SummaryRow | None:
    return next((r for r in rows if r.name == "teacher"), None)


def _columns(row: SummaryRow, teacher: SummaryRow | None) -> list[str]:
    acc = row.metrics.get(PRIMARY)
    delta = ""
    if acc and teacher and row is not teacher and PRIMARY in teacher.metrics:
        delta = f"{acc.mean - teacher.metrics[PRIMARY].mean:+.2f}"
    integer = row.metrics.get("test_acc_integer")
    return [
        row.name,
        row.model,
        row.method,
        row.bits,
        str(len(row.seeds)),
        acc.format() if acc else "n/a",
        delta,
        integer.format() if integer else "",
        f"{row.size_bytes / 1024:.1f}",
        f"{row.compression:.1f}x" if math.isfinite(row.compression) else "",
        row.wall_s.format(1) if row.wall_s else "",
    ]


HEADERS = [
    "Run",
    "Model",
    "Method",
    "Bits",
    "Seeds",
    "Test acc. (%)",
    "Δ vs teacher",
    "Integer model acc. (%)",
    "Size (KiB)",
    "Compression",
    "Time (s)",
]


# The terminal table leaves out the columns that vary least; the report has them all.
CONSOLE_HEADERS = tuple(h for h in HEADERS if h not in ("Model", "Time (s)"))


def results_table(records: list[dict[str, Any]]) -> Table:
    """A rich table of the summary rows, for the terminal."""
    rows = summarize(records)
    teacher = _teacher_row(rows)
    keep = [HEADERS.index(h) for h in CONSOLE_HEADERS]
    table = Table(title="Results (mean ± standard error over seeds)")
    for header in CONSOLE_HEADERS:
        table.add_column(header, justify="left" if header in ("Run", "Method") else "right")
    for row in rows:
        cells = _columns(row, teacher)
        table.add_row(*(cells[i] for i in keep))
    return table


def markdown_table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:g}"


def _comparison_sections(
    rows: list[SummaryRow], records: list[dict[str, Any]], out_dir: Path
) -> list[str]:
    lines: list[str] = []
    pivot = pivot_by_bits(rows, PRIMARY)
    if pivot is not None:
        headers, table = pivot
        lines += [
            "",
            "## Method x bit width",
            "",
            "Test accuracy (%), mean ± standard error over seeds.",
            "",
            markdown_table(headers, table),
        ]
    for grid in alpha_temperature_grids(rows, PRIMARY):
        name = f"grid_{grid.group}_{grid.bits}.png".replace("/", "_")
        plot_grid(grid, out_dir / name, PRIMARY)
        table = [
            [f"{a:g}", *[c.format() if c else "" for c in row]]
            for a, row in zip(grid.alphas, grid.values, strict=True)
        ]
        best = max(
            (c.mean, a, t)
            for a, row in zip(grid.alphas, grid.values, strict=True)
            for t, c in zip(grid.temperatures, row, strict=True)
            if c
        )
        headers = ["alpha \\ T", *[f"{t:g}" for t in grid.temperatures]]
        lines += [
            "",
            f"## Alpha x temperature: {grid.group} ({grid.bits})",
            "",
            markdown_table(headers, table),
            "",
            f"Best: alpha {best[1]:g}, T {best[2]:g} ({best[0]:.2f}%).",
            "",
            f"![alpha x temperature]({name})",
        ]
    effects = distillation_effects(records, PRIMARY)
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
            ]
            for e in effects
        ]
        headers = [
            "Student",
            "Baseline",
            "Bits",
            "alpha",
            "T",
            "Student acc.",
            "Baseline acc.",
            "Δ (KD gain)",
            "Pairs",
        ]
        lines += [
            "",
            "## Effect of distillation",
            "",
            "Difference in test accuracy (points) against the `compare_to` student, "
            "paired by seed and bit width; ± is the standard error of the paired "
            "differences.",
            "",
            markdown_table(headers, table),
        ]
    return lines


def _deployment_sections(
    exports: list[dict[str, Any]], benchmarks: list[dict[str, Any]]
) -> list[str]:
    lines: list[str] = []
    if exports:
        rows = []
        for e in exports:
            c = e.get("comparison") or {}
            match = (
                f"agreement {100 * c['agreement']:.2f}%"
                if c.get("agreement") is not None
                else f"PSNR {c['psnr_db']:.1f} dB"
                if c.get("psnr_db") is not None
                else ""
            )
            rows.append(
                [
                    e["run"],
                    e["format"],
                    e.get("file", ""),
                    f"{e['file_bytes'] / 1024:.1f}" if "file_bytes" in e else "",
                    f"{c['max_abs_diff']:.3g}" if c else "",
                    match,
                    "yes" if e.get("passed") else f"no: {e.get('error', '')}",
                ]
            )
        lines += [
            "",
            "## Exports",
            "",
            "Each file was executed (onnxruntime; qonnx's executor for QONNX) on test "
            "inputs and compared with the PyTorch model before it was written.",
            "",
            markdown_table(
                ["Run", "Format", "File", "KiB", "Max abs diff", "Match", "Verified"], rows
            ),
        ]
    if benchmarks:
        rows = []
        for b in benchmarks:
            for backend in b["backends"]:
                rows.append(
                    [
                        b["run"],
                        backend["backend"],
                        f"{backend['latency_b1_ms']:.3f}" if backend.get("latency_b1_ms") else "",
                        f"{backend['best_throughput']:,.0f}"
                        if backend.get("best_throughput")
                        else "",
                        str(backend.get("best_batch") or ""),
                        f"{backend['energy_mj']:.3g}" if backend.get("energy_mj") else "",
                        backend.get("unavailable") or "",
                    ]
                )
        lines += [
            "",
            "## Deployment benchmark",
            "",
            markdown_table(
                [
                    "Run",
                    "Backend",
                    "Latency b=1 (ms)",
                    "Best img/s",
                    "at batch",
                    "Energy (mJ/img, est.)",
                    "Note",
                ],
                rows,
            ),
            "",
            *benchmarks[0].get("notes", []),
            "Per-run details and plots: `benchmarks/<run>/benchmark.md`.",
        ]
    return lines


def write_report(
    out_dir: str | Path,
    records: list[dict[str, Any]],
    title: str | None = None,
    exports: list[dict[str, Any]] | None = None,
    benchmarks: list[dict[str, Any]] | None = None,
) -> Path:
    """Write ``report.md`` (and its plots) into ``out_dir``; return the report's path."""
    out_dir = Path(out_dir)
    rows = summarize(records)
    teacher = _teacher_row(rows)
    first = records[0] if records else {}
    data = first.get("data", {})
    experiment = first.get("experiment_config", {})
    title = title or first.get("experiment", "experiment")
    test_size = data.get("sizes", {}).get("test")
    lines = [
        f"# {title}",
        "",
        experiment.get("description", "") or "",
        "",
        f"Generated {datetime.now(timezone.utc).isoformat(timespec='seconds')} by qdistill "
        f"{first.get('versions', {}).get('qdistill', '?')} (torch "
        f"{first.get('versions', {}).get('torch', '?')}, device {first.get('device', '?')}).",
        "",
        f"Data: **{data.get('name', '?')}**, inputs {data.get('input_shape')}, "
        f"{data.get('num_classes')} classes, split sizes {data.get('sizes')}.",
    ]
    if test_size:
        lines.append(
            f"One test sample is {100 / test_size:.2f} accuracy points; differences smaller "
            "than a few samples or than the standard errors below are noise."
        )
    lines += ["", "## Results", "", markdown_table(HEADERS, [_columns(r, teacher) for r in rows])]
    lines += [
        "",
        "Test accuracy is that of the fake-quantized model; *integer model* is the same "
        "model after `convert()` (integer weights and activations, exact integer "
        "accumulation), which must agree. Size counts weights at their bit widths plus "
        "scales, zero points, biases and BatchNorm statistics; compression is relative "
        "to the same values stored as float32.",
    ]
    plot = plot_accuracy_vs_bits(rows, out_dir / "accuracy_vs_bits.png", PRIMARY)
    if plot is not None:
        lines += ["", "## Accuracy versus bit width", "", f"![accuracy vs bits]({plot.name})"]
    lines += _comparison_sections(rows, records, out_dir)
    lines += _deployment_sections(exports or [], benchmarks or [])
    lines += ["", "## Runs", ""]
    run_rows = [
        [
            r["name"],
            str(r["seed"]),
            r["run_id"],
            f"{r['metrics'].get('train_acc', math.nan):.2f}",
            f"{r['metrics'].get('val_acc', math.nan):.2f}",
            f"{r['metrics'].get(PRIMARY, math.nan):.2f}",
            str((r.get("training") or {}).get("best_epoch", "")),
            f"{r.get('wall_s', math.nan):.1f}",
            r.get("checkpoint", ""),
        ]
        for r in records
    ]
    lines.append(
        markdown_table(
            [
                "Run",
                "Seed",
                "Id",
                "Train acc.",
                "Val acc.",
                "Test acc.",
                "Best epoch",
                "Time (s)",
                "Checkpoint",
            ],
            run_rows,
        )
    )
    lines += [
        "",
        "Every run's full record (config, seed, versions, per-epoch history) is in "
        "`results.jsonl`; the experiment as validated is in `experiment.json`.",
        "",
    ]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
