"""The Markdown report of an experiment, written from its typed run records; the task of
the records decides the columns, notes and pictures."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from qdistill.experiment.deploy import BenchmarkRecord, ExportRecord
from qdistill.experiment.hardware import HardwareRecord
from qdistill.experiment.record import RunRecord
from qdistill.experiment.schema import ReferenceBlock
from qdistill.paths import write_text
from qdistill.report.benchmark import write_benchmark_report
from qdistill.report.comparison_sections import grid_sections, paired_section, pivot_section
from qdistill.report.deployment import benchmark_section, export_section
from qdistill.report.hardware_section import hardware_section
from qdistill.report.per_image import per_image_section
from qdistill.report.plots import plot_picture_grid, plot_quality_vs_bits
from qdistill.report.references import references_section
from qdistill.report.results import results_rows, task_of
from qdistill.report.sensitivity import sensitivity_sections
from qdistill.report.summary import summarize
from qdistill.report.tables import drop_empty_columns, markdown_table
from qdistill.tasks import Task

MAX_PICTURES = 6  # runs in the picture grid


def _header(records: list[RunRecord], title: str | None, description: str | None) -> list[str]:
    first = records[0] if records else None
    versions = first.versions if first else {}
    recorded = first.experiment_config.get("description", "") if first else ""
    task = task_of(records)
    return [
        f"# {title or (first.experiment if first else 'experiment')}",
        "",
        (recorded if description is None else description) or "",
        "",
        f"Generated {datetime.now(timezone.utc).isoformat(timespec='seconds')} by qdistill "
        f"{versions.get('qdistill', '?')} (torch {versions.get('torch', '?')}, device "
        f"{first.device if first else '?'}).",
        "",
        *task.describe_data(first.data if first else {}),
    ]


def _results_section(records: list[RunRecord], task: type[Task]) -> list[str]:
    headers, rows = results_rows(records)
    keys = {key for record in records for key in record.metrics}
    notes = task.metric_notes([record.notes for record in records], keys)
    return ["", "## Results", "", markdown_table(*drop_empty_columns(headers, rows))] + [
        line for note in notes for line in ("", note)
    ]


def _pictures_section(records: list[RunRecord], task: type[Task], out_dir: Path) -> list[str]:
    seed = min(record.seed for record in records)
    runs = [
        (r.name, r.seed, r.metrics.get(task.headline.key, float("nan")))
        for r in records
        if r.seed == seed
    ]
    panels = task.picture_panels(out_dir / "images", runs[:MAX_PICTURES])
    if not panels:
        return []
    grid = plot_picture_grid(panels, out_dir / "picture_grid.png")
    return [
        "",
        "## Pictures (the most detailed crop of the first test image)",
        "",
        f"![grid]({grid.name})",
    ]


def _chain(stages: list, value) -> str:
    """One number per stage joined by arrows; empty when a record lacks them (older runs)."""
    values = [value(stage) for stage in stages]
    return "" if any(v is None for v in values) else " → ".join(values)


def _stages_section(records: list[RunRecord], task: type[Task]) -> list[str]:
    """What each stage did to the first seed's runs: the validation metric, size, MACs
    and CPU latency after it, and the time it took."""
    seed = min(record.seed for record in records)
    rows = []
    for record in records:
        measured = [s for s in record.stages if task.monitor in s.metrics]
        if record.seed != seed or len(measured) < 2:
            continue
        rows.append(
            [
                record.name,
                " → ".join(f"{s.title} {s.metrics[task.monitor]:.2f}" for s in measured),
                _chain(measured, lambda s: f"{s.size_bytes / 1024:.1f}"),
                _chain(measured, lambda s: None if s.macs is None else f"{s.macs / 1e6:.3g}"),
                _chain(measured, lambda s: None if s.latency_ms is None else f"{s.latency_ms:.3g}"),
                " + ".join(f"{s.wall_s:.1f}" for s in measured),
            ]
        )
    if not rows:
        return []
    headers = ["Run", f"{task.monitor} after each stage", "Size (KiB)", "MMACs"]
    return [
        "",
        "## Stages",
        "",
        f"After each stage of a recipe (seed {seed}): {task.monitor}, size, MACs per sample, "
        "PyTorch eager latency for one input of the data's input shape (ms, median of 7 on "
        "the run's device) and the seconds the stage took. A fake-quantized model computes "
        "in float with its quantizers added, so its PyTorch latency is not a deployment "
        "latency: see the exports and benchmarks for integer runtimes.",
        "",
        markdown_table([*headers, "Latency (ms)", "Time (s)"], rows),
    ]


def _runs_section(records: list[RunRecord], task: type[Task]) -> list[str]:
    def value(record: RunRecord, key: str, digits: int) -> str:
        number = record.metrics.get(key)
        return "" if number is None else f"{number:.{digits}f}"

    rows = [
        [
            r.name,
            str(r.seed),
            r.run_id,
            *(value(r, m.key, m.digits) for m in task.per_run),
            str(r.best_epoch or ""),
            f"{r.wall_s:.1f}",
            r.checkpoint,
        ]
        for r in records
    ]
    headers = ["Run", "Seed", "Id", *(m.label for m in task.per_run)]
    return [
        "",
        "## Runs",
        "",
        markdown_table([*headers, "Best epoch", "Time (s)", "Checkpoint"], rows),
        "",
        "Every run's full record (config, seed, versions, stages, per-epoch history) is in "
        "`results.jsonl`; the experiment as validated is in `experiment.json`.",
        "",
    ]


def write_report(
    out_dir: str | Path,
    records: list[RunRecord],
    title: str | None = None,
    exports: list[ExportRecord] | None = None,
    benchmarks: list[BenchmarkRecord] | None = None,
    description: str | None = None,
    hardware: list[HardwareRecord] | None = None,
    references: list[ReferenceBlock] | None = None,
) -> Path:
    """Write ``report.md`` (with its plots, and each benchmark's own report) into
    ``out_dir``; return its path. ``description`` (the experiment file's, as it is now)
    replaces the one the first record was run with; ``references`` are published numbers
    to compare with."""
    out_dir = Path(out_dir)
    task = task_of(records)
    rows = summarize(records)
    lines = _header(records, title, description)
    lines += _results_section(records, task)
    lines += references_section(records, references or [], task.headline)
    lines += per_image_section(rows, task)
    if records:
        lines += _pictures_section(records, task, out_dir)
    lines += sensitivity_sections(records)
    plot = plot_quality_vs_bits(
        rows, out_dir / "quality_vs_bits.png", task.headline, task.baselines
    )
    if plot is not None:
        lines += ["", "## Quality versus bit width", "", f"![quality vs bits]({plot.name})"]
    lines += pivot_section(rows, task.headline)
    lines += grid_sections(rows, task.headline, out_dir)
    lines += paired_section(records, task.headline)
    if records:
        lines += _stages_section(records, task)
    lines += export_section(exports or [])
    for benchmark in benchmarks or []:
        write_benchmark_report(benchmark.measurement, out_dir / benchmark.folder, benchmark.run)
    lines += benchmark_section(benchmarks or [])
    lines += hardware_section(records, hardware or [], task.headline, out_dir)
    lines += _runs_section(records, task)
    path = out_dir / "report.md"
    write_text(path, "\n".join(lines))
    return path
