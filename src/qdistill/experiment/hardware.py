"""After the runs: FPGA dataflow estimates of selected runs, with board economics.

The estimate is a pure, sub-second function of a run's checkpoint, so it is computed
afresh each time (nothing to reuse); the results are written to ``hardware.json``. A
model that cannot be mapped is recorded with the reason instead of stopping the
experiment.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from qdistill.console import console
from qdistill.errors import QdistillError
from qdistill.experiment.deploy import select_runs
from qdistill.experiment.record import RunRecord, json_safe
from qdistill.experiment.schema import HardwareConfig, HardwareTargetConfig
from qdistill.hardware.benchmark import cpu_throughput
from qdistill.hardware.boards import Catalogue, load_catalogue
from qdistill.hardware.dataflow import dataflow_units
from qdistill.hardware.economics import CostReport, board_budget, cost_report
from qdistill.hardware.estimate import DataflowTarget, estimate_units
from qdistill.hardware.units import Unit
from qdistill.models import load_model
from qdistill.paths import write_text
from qdistill.tasks import Task


@dataclass(frozen=True)
class HardwareRecord:
    """One run's estimate at one target, or why it has none."""

    run: str
    run_id: str
    target: str  # the target's label, e.g. "1000 FPS"
    report: CostReport | None
    error: str | None = None

    def to_dict(self) -> dict:
        return json_safe(
            {
                "run": self.run,
                "run_id": self.run_id,
                "target": self.target,
                "error": self.error,
                **({"estimate": self.report.to_dict()} if self.report else {}),
            }
        )


def _dataflow_target(
    target: HardwareTargetConfig,
    config: HardwareConfig,
    catalogue: Catalogue,
    cpu_fps: float | None,
) -> DataflowTarget:
    fit = board_budget(catalogue.board(target.fit), config.utilisation) if target.fit else None
    fps = cpu_fps if target.match_cpu else target.fps
    return DataflowTarget(
        clock_mhz=config.clock_mhz,
        fps=fps,
        fit_within=fit,
        uniform=target.uniform,
        mvau_wwidth_max=config.mvau_wwidth_max,
    )


def _processors(
    config: HardwareConfig, model, input_shape: tuple[int, ...], name: str
) -> dict[str, tuple[float, str]]:
    """The processors to compare with: given throughputs, and this CPU measured."""
    measured = {n: (fps, "given in the experiment") for n, fps in config.processors.items()}
    if config.measures_cpu:
        console.print(f"  hardware {name}: timing it on this CPU ...")
        measured["cpu"] = cpu_throughput(model, input_shape)
    return measured


def _shown_boards(catalogue: Catalogue, names: list[str]) -> Catalogue:
    if not names:
        return catalogue
    return dataclasses.replace(catalogue, boards={n: catalogue.board(n) for n in names})


def _prepare(
    config: HardwareConfig, record: RunRecord, input_shape: tuple[int, ...], out_dir: Path
) -> tuple[list[Unit] | str, dict]:
    """A run's dataflow units (or why it has none) and the processors to compare with,
    computed once for all targets."""
    model, _ = load_model(out_dir / record.checkpoint)
    try:
        units: list[Unit] | str = dataflow_units(model, input_shape)
    except QdistillError as err:
        console.print(f"  hardware {record.name}: [yellow]no estimate[/]: {err}")
        return str(err), {}
    return units, _processors(config, model, input_shape, record.name)


def estimate_runs(
    config: HardwareConfig, records: list[RunRecord], task: Task, out_dir: Path
) -> list[HardwareRecord]:
    catalogue = load_catalogue(config.catalogue)
    shown = _shown_boards(catalogue, config.boards)
    input_shape = tuple(config.input_shape or task.data.input_shape)
    rows: list[HardwareRecord] = []
    prepared: dict[str, tuple[list[Unit] | str, dict]] = {}  # run -> (units or error, processors)
    for target in config.targets:
        for record in select_runs(records, target.runs or config.runs, quantized_only=True):
            if record.name not in prepared:
                prepared[record.name] = _prepare(config, record, input_shape, out_dir)
            units, processors = prepared[record.name]
            row = HardwareRecord(record.name, record.run_id, target.label, None)
            if isinstance(units, str):
                rows.append(dataclasses.replace(row, error=units))
                continue
            cpu = processors.get("cpu", (None,))[0]
            try:
                estimate = estimate_units(units, _dataflow_target(target, config, catalogue, cpu))
            except QdistillError as err:
                console.print(f"  hardware {record.name}: [yellow]no estimate[/]: {err}")
                rows.append(dataclasses.replace(row, error=str(err)))
                continue
            rows.append(dataclasses.replace(row, report=cost_report(estimate, shown, processors)))
        console.print(f"  hardware: {target.label} estimated")
    write_text(out_dir / "hardware.json", json.dumps([r.to_dict() for r in rows], indent=1))
    return rows
