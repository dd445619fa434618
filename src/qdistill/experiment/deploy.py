"""After the runs: export selected runs and benchmark them (the experiment's deploy step).

Each export or benchmark is tied to the run id it measured, so re-running an
experiment reuses results whose run did not change. A refused or failed export is
recorded with its reason instead of stopping the experiment.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qdistill.console import console
from qdistill.errors import QdistillError
from qdistill.experiment.schema import BenchmarkConfig, ExportConfig
from qdistill.experiment.tasks import Task
from qdistill.export import export_model
from qdistill.models import load_model


def _selected(records: list[dict[str, Any]], names: list[str], quantized_only: bool):
    """First-seed record of every run whose name or student group is in ``names``."""
    chosen: dict[str, dict[str, Any]] = {}
    for record in sorted(records, key=lambda r: r["seed"]):
        wanted = record["name"] in names or record.get("group") in names
        if names and not wanted:
            continue
        if not names and quantized_only and record["method"] == "float":
            continue
        chosen.setdefault(record["name"], record)
    return list(chosen.values())


def export_runs(
    config: ExportConfig, records: list[dict[str, Any]], task: Task, out_dir: Path
) -> list[dict[str, Any]]:
    rows = []
    for record in _selected(records, config.runs, quantized_only=True):
        model, _ = load_model(out_dir / record["checkpoint"])
        for fmt in config.formats:
            path = out_dir / "exports" / f"{record['name']}-s{record['seed']}.{fmt}.onnx"
            report_path = Path(f"{path}.report.json")
            row = {
                "run": record["name"],
                "run_id": record["run_id"],
                "format": fmt,
                "file": str(path.relative_to(out_dir)),
            }
            if report_path.is_file() and path.is_file():
                saved = json.loads(report_path.read_text())
                if saved.get("run_id") == record["run_id"]:
                    rows.append({**row, **saved, "reused": True})
                    continue
            try:
                report = export_model(model, path, fmt, task.sample_inputs(config.samples))
                saved = {**report.to_dict(), "run_id": record["run_id"]}
                report_path.write_text(json.dumps(saved, indent=2))
                rows.append({**row, **saved})
                console.print(f"  export {record['name']}: {report.summary()}")
            except QdistillError as err:
                rows.append({**row, "passed": False, "error": str(err)})
                console.print(f"  export {record['name']} {fmt}: [yellow]not written[/]: {err}")
    return rows


def benchmark_runs(
    config: BenchmarkConfig, records: list[dict[str, Any]], task: Task, out_dir: Path
) -> list[dict[str, Any]]:
    from qdistill.hardware.benchmark import benchmark_model
    from qdistill.hardware.ops import layer_costs
    from qdistill.hardware.size import model_size
    from qdistill.report.benchmark import write_benchmark_report

    rows = []
    for record in _selected(records, config.runs, quantized_only=False):
        directory = out_dir / "benchmarks" / f"{record['name']}-s{record['seed']}"
        saved_path = directory / "benchmark.json"
        if saved_path.is_file():
            saved = json.loads(saved_path.read_text())
            if saved.get("run_id") == record["run_id"]:
                rows.append({"run": record["name"], **saved})
                continue
        model, _ = load_model(out_dir / record["checkpoint"])
        console.print(f"  benchmark {record['name']} ...")
        sample = task.sample_inputs(32)
        result = benchmark_model(
            model,
            tuple(sample.shape[1:]),
            sample,
            backends=tuple(config.backends) if config.backends else None,
            batch_sizes=tuple(config.batch_sizes),
            repeats=config.repeats,
            time_limit_s=config.time_limit_s,
        )
        write_benchmark_report(
            result, layer_costs(model, sample[:1]), model_size(model), directory, record["name"]
        )
        saved = {**json.loads(saved_path.read_text()), "run_id": record["run_id"]}
        saved_path.write_text(json.dumps(saved, indent=2))
        rows.append({"run": record["name"], **saved})
    return rows
