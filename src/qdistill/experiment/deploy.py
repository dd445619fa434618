"""After the runs: export selected runs and measure their deployment.

Exports and measurements are stamped with the run id they came from, so re-running an
experiment reuses those whose run did not change. A refused or failed export is
recorded with its reason instead of stopping the experiment.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qdistill.console import console
from qdistill.errors import QdistillError
from qdistill.experiment.record import RunRecord
from qdistill.experiment.schema import BenchmarkConfig, ExportConfig
from qdistill.export import ExportReport, export_model, saved_export
from qdistill.hardware.deployment import (
    DeploymentMeasurement,
    measure_deployment,
    saved_measurement,
)
from qdistill.models import load_model
from qdistill.tasks import Task


@dataclass(frozen=True)
class ExportRecord:
    """One export of one run: its verified report, or why it was not written."""

    run: str
    run_id: str
    format: str
    file: str  # relative to the experiment's folder
    report: ExportReport | None
    error: str | None = None
    reused: bool = False

    @property
    def passed(self) -> bool:
        return self.report is not None and self.report.passed


@dataclass(frozen=True)
class BenchmarkRecord:
    """The deployment measurement of one run, and the folder of its report."""

    run: str
    run_id: str
    folder: str  # relative to the experiment's folder
    measurement: DeploymentMeasurement


def select_runs(
    records: list[RunRecord], names: list[str], quantized_only: bool
) -> list[RunRecord]:
    """First-seed record of every run whose name or student group is in ``names`` (all
    runs, or all quantized runs with ``quantized_only``, when ``names`` is empty)."""
    chosen: dict[str, RunRecord] = {}
    for record in sorted(records, key=lambda r: r.seed):
        if names and record.name not in names and record.group not in names:
            continue
        if not names and quantized_only and record.plan is None:
            continue
        chosen.setdefault(record.name, record)
    return list(chosen.values())


def _export(record: RunRecord, fmt: str, config: ExportConfig, task: Task, out_dir: Path):
    path = out_dir / "exports" / f"{record.name}-s{record.seed}.{fmt}.onnx"
    row = {"run": record.name, "run_id": record.run_id, "format": fmt}
    row["file"] = str(path.relative_to(out_dir))
    saved = saved_export(path, record.run_id)
    if saved is not None:
        return ExportRecord(**row, report=saved, reused=True)
    model, _ = load_model(out_dir / record.checkpoint)
    try:
        report = export_model(
            model,
            path,
            fmt,
            task.sample_inputs(config.samples),
            stamp=record.run_id,
            tolerance=config.tolerance.tolerance(),
            on_mismatch=config.on_mismatch,
        )
    except QdistillError as err:
        console.print(f"  export {record.name} {fmt}: [yellow]not written[/]: {err}")
        return ExportRecord(**row, report=None, error=str(err))
    console.print(f"  export {record.name} ({report.outcome}): {report.summary()}")
    return ExportRecord(**row, report=report)


def export_runs(
    config: ExportConfig, records: list[RunRecord], task: Task, out_dir: Path
) -> list[ExportRecord]:
    selected = select_runs(records, config.runs, quantized_only=True)
    return [_export(r, fmt, config, task, out_dir) for r in selected for fmt in config.formats]


def benchmark_runs(
    config: BenchmarkConfig, records: list[RunRecord], task: Task, out_dir: Path
) -> list[BenchmarkRecord]:
    rows = []
    for record in select_runs(records, config.runs, quantized_only=False):
        folder = out_dir / "benchmarks" / f"{record.name}-s{record.seed}"
        measurement = saved_measurement(folder, record.run_id)
        if measurement is None:
            model, _ = load_model(out_dir / record.checkpoint)
            console.print(f"  benchmark {record.name} ...")
            measurement = measure_deployment(
                model,
                task.sample_inputs(32),
                record.run_id,
                backends=tuple(config.backends) if config.backends else None,
                batch_sizes=tuple(config.batch_sizes),
                repeats=config.repeats,
                time_limit_s=config.time_limit_s,
            )
            measurement.save(folder)
        relative = str(folder.relative_to(out_dir))
        rows.append(BenchmarkRecord(record.name, record.run_id, relative, measurement))
    return rows
