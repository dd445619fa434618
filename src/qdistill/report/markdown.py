"""Markdown report and console table of an experiment's results."""

from __future__ import annotations

import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.table import Table

from qdistill.report.comparisons import (
    alpha_temperature_grids,
    paired_effects,
    pivot_by_bits,
    unpaired_comparisons,
)
from qdistill.report.plots import plot_accuracy_vs_bits, plot_grid
from qdistill.report.sr import (
    SR_HEADERS,
    bicubic_columns,
    lpips_note,
    picture_grid,
    sensitivity_sections,
    sr_columns,
)
from qdistill.report.summary import SummaryRow, summarize

PRIMARY = "test_acc"
METRIC_LABELS = {"test_acc": "Test accuracy (%)", "test_psnr_y": "Test PSNR-Y (dB)"}


def primary_metric(records: list[dict[str, Any]]) -> str:
    """The headline metric of the records' task (accuracy, or PSNR on Y for SR)."""
    return records[0].get("headline", PRIMARY) if records else PRIMARY


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
SR_CONSOLE_HEADERS = (
    "Run",
    "Method",
    "Bits",
    "Seeds",
    "PSNR-Y (dB)",
    "SSIM-Y",
    "HaarPSI",
    "Δ PSNR-Y vs teacher",
    "Size (KiB)",
)


def results_table(records: list[dict[str, Any]]) -> Table:
    """A rich table of the summary rows, for the terminal."""
    rows = summarize(records)
    teacher = _teacher_row(rows)
    sr = primary_metric(records) != PRIMARY
    headers, columns = (SR_HEADERS, sr_columns) if sr else (HEADERS, _columns)
    shown = SR_CONSOLE_HEADERS if sr else CONSOLE_HEADERS
    keep = [headers.index(h) for h in shown]
    table = Table(title="Results (mean ± standard error over seeds)")
    for header in shown:
        table.add_column(header, justify="left" if header in ("Run", "Method") else "right")
    for row in rows:
        cells = columns(row, teacher)
        table.add_row(*(cells[i] for i in keep))
    if sr and (bicubic := bicubic_columns(rows)) is not None:
        table.add_row(*(bicubic[i] for i in keep))
    return table


def drop_empty_columns(
    headers: list[str], rows: list[list[str]]
) -> tuple[list[str], list[list[str]]]:
    """Leave out the columns no row has a value in (e.g. RGB metrics of a Y-only model)."""
    keep = [i for i in range(len(headers)) if any(row[i] for row in rows)]
    return [headers[i] for i in keep], [[row[i] for i in keep] for row in rows]


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
    primary = primary_metric(records)
    label = METRIC_LABELS.get(primary, primary)
    pivot = pivot_by_bits(rows, primary)
    if pivot is not None:
        headers, table = pivot
        lines += [
            "",
            "## Method x bit width",
            "",
            f"{label}, mean ± standard error over seeds.",
            "",
            markdown_table(headers, table),
        ]
    for grid in alpha_temperature_grids(rows, primary):
        name = f"grid_{grid.group}_{grid.bits}.png".replace("/", "_")
        plot_grid(grid, out_dir / name, primary)
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
    effects = paired_effects(records, primary)
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
            "Student",
            "Baseline",
            "Δ (gain)",
            "Pairs",
        ]
        lines += [
            "",
            "## Paired comparisons",
            "",
            f"Difference in {label[0].lower() + label[1:]} against the `compare_to` student "
            "(the effect of what the two recipes differ in: distillation, equalization, "
            "...), paired by seed and bit width; ± is the standard error of the paired "
            "differences.",
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
    description: str | None = None,
) -> Path:
    """Write ``report.md`` (and its plots) into ``out_dir``; return the report's path.
    ``description`` (the experiment file's, as it is now) replaces the one the first
    record was run with."""
    out_dir = Path(out_dir)
    rows = summarize(records)
    teacher = _teacher_row(rows)
    first = records[0] if records else {}
    data = first.get("data", {})
    experiment = first.get("experiment_config", {})
    title = title or first.get("experiment", "experiment")
    test_size = data.get("sizes", {}).get("test")
    primary = primary_metric(records)
    sr = primary != PRIMARY
    lines = [
        f"# {title}",
        "",
        (experiment.get("description", "") if description is None else description) or "",
        "",
        f"Generated {datetime.now(timezone.utc).isoformat(timespec='seconds')} by qdistill "
        f"{first.get('versions', {}).get('qdistill', '?')} (torch "
        f"{first.get('versions', {}).get('torch', '?')}, device {first.get('device', '?')}).",
        "",
    ]
    if sr:
        images = data.get("images", {})
        lines.append(
            f"Data: **{data.get('name', '?')}**, x{data.get('scale')} super-resolution on "
            f"{data.get('channels', '?').upper()}, training on random {data.get('lr_patch')}"
            f"-pixel LR patches of {len(images.get('train', []))} images, validation on "
            f"{images.get('val')}, test on {images.get('test')}."
        )
    else:
        lines.append(
            f"Data: **{data.get('name', '?')}**, inputs {data.get('input_shape')}, "
            f"{data.get('num_classes')} classes, split sizes {data.get('sizes')}."
        )
    if test_size:
        lines.append(
            f"One test sample is {100 / test_size:.2f} accuracy points; differences smaller "
            "than a few samples or than the standard errors below are noise."
        )
    if sr:
        table = [sr_columns(r, teacher) for r in rows]
        if (bicubic := bicubic_columns(rows)) is not None:
            table.append(bicubic)
        lines += ["", "## Results", "", markdown_table(*drop_empty_columns(SR_HEADERS, table))]
        lines += [
            "",
            "PSNR and SSIM of 8-bit outputs with a border of `scale` pixels cropped, on the Y "
            "channel of YCbCr (BT.601) and, for RGB models, on RGB; HaarPSI (piq; 1 = "
            "identical) is a training-free perceptual similarity. "
            + lpips_note(records)
            + " The quantized model's quality is that of the fake-quantized model; *integer "
            "model* is the same after `convert()`.",
        ]
        grid = picture_grid(out_dir, records)
        if grid is not None:
            lines += [
                "",
                "## Pictures (centre crop of the first test image)",
                "",
                f"![grid]({grid.name})",
            ]
        lines += sensitivity_sections(records)
    else:
        lines += [
            "",
            "## Results",
            "",
            markdown_table(HEADERS, [_columns(r, teacher) for r in rows]),
        ]
    plot = plot_accuracy_vs_bits(rows, out_dir / "quality_vs_bits.png", primary)
    if plot is not None:
        lines += ["", "## Quality versus bit width", "", f"![quality vs bits]({plot.name})"]
    lines += _comparison_sections(rows, records, out_dir)
    lines += _deployment_sections(exports or [], benchmarks or [])
    lines += ["", "## Runs", ""]
    first_key, val_key = ("train_acc", "val_acc") if not sr else ("test_ssim_y", "val_psnr_y")
    run_rows = [
        [
            r["name"],
            str(r["seed"]),
            r["run_id"],
            f"{r['metrics'].get(first_key, math.nan):.{2 if not sr else 4}f}",
            f"{r['metrics'].get(val_key, math.nan):.2f}",
            f"{r['metrics'].get(primary, math.nan):.2f}",
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
                "Train acc." if not sr else "Test SSIM-Y",
                "Val acc." if not sr else "Val PSNR-Y",
                "Test acc." if not sr else "Test PSNR-Y",
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
