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
from qdistill.hardware.boards import Catalogue, load_catalogue
from qdistill.hardware.economics import CostReport, board_budget, cost_report
from qdistill.hardware.estimate import DataflowTarget, estimate_dataflow
from qdistill.models import load_model
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
    target: HardwareTargetConfig, config: HardwareConfig, catalogue: Catalogue
) -> DataflowTarget:
    fit = board_budget(catalogue.board(target.fit), config.utilisation) if target.fit else None
    return DataflowTarget(
        clock_mhz=config.clock_mhz, fps=target.fps, fit_within=fit, uniform=target.uniform
    )


def _shown_boards(catalogue: Catalogue, names: list[str]) -> Catalogue:
    if not names:
        return catalogue
    return dataclasses.replace(catalogue, boards={n: catalogue.board(n) for n in names})


def estimate_runs(
    config: HardwareConfig, records: list[RunRecord], task: Task, out_dir: Path
) -> list[HardwareRecord]:
    catalogue = load_catalogue(config.catalogue)
    shown = _shown_boards(catalogue, config.boards)
    input_shape = tuple(config.input_shape or task.data.input_shape)
    rows = []
    for record in select_runs(records, config.runs, quantized_only=True):
        model, _ = load_model(out_dir / record.checkpoint)
        for target in config.targets:
            row = {"run": record.name, "run_id": record.run_id, "target": target.label}
            try:
                estimate = estimate_dataflow(
                    model, input_shape, _dataflow_target(target, config, catalogue)
                )
            except QdistillError as err:
                console.print(f"  hardware {record.name}: [yellow]no estimate[/]: {err}")
                rows.append(HardwareRecord(**row, report=None, error=str(err)))
                continue
            rows.append(HardwareRecord(**row, report=cost_report(estimate, shown)))
        console.print(f"  hardware {record.name}: {len(config.targets)} target(s) estimated")
    (out_dir / "hardware.json").write_text(json.dumps([r.to_dict() for r in rows], indent=1))
    return rows
