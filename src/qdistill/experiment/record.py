"""RunRecord: everything one finished run produced, typed; results.jsonl holds one per line.

Identity (experiment, run id, name, student group, seed, spec version), what was run
(task, model, method or recipe, the bit setting and plan, distillation settings), the
results (the task's test metrics, each stage's validation metrics, size, timings),
artefacts (the checkpoint) and the environment (data summary, versions, device). The
line format carries ``schema``; records written before it existed are migrated on read
(see :mod:`qdistill.experiment.migrate`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from qdistill.quant import QuantPlan
from qdistill.quant.half import HalfPlan
from qdistill.quant.sensitivity import Allocation
from qdistill.tasks import TASKS
from qdistill.tasks.base import metric_of

SCHEMA_VERSION = 2


def json_safe(value: Any) -> Any:
    """Replace NaN/inf (not valid JSON) with None, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


@dataclass(frozen=True)
class StageRecord:
    """One stage of a run: how long it took, the model's validation metrics, size, MACs
    and CPU latency after it, and what the stage reported (training history, ...)."""

    stage: str  # registry name ("start" for the model the recipe began from)
    title: str
    wall_s: float
    metrics: dict[str, float]
    size_bytes: int
    details: dict[str, Any] = field(default_factory=dict)
    macs: int | None = None  # conv/linear MACs for one sample input (None: older records)
    latency_ms: float | None = None  # PyTorch eager, batch 1, median, on the run's device

    @property
    def best_epoch(self) -> int | None:
        """The kept epoch of the stage's (last) training, if it trained."""
        training = self.details.get("training", self.details)
        if "phases" in training:
            training = list(training["phases"].values())[-1]
        return training.get("best_epoch")


@dataclass(frozen=True)
class RunRecord:
    # identity
    experiment: str
    run_id: str
    name: str
    group: str  # the student (all its sweep points), "teacher" for the teacher
    seed: int
    spec_version: int
    # what was run
    task: str
    model: str
    method: str  # float, ptq, qat, qkd, half, or "recipe"
    recipe: str  # the stages, e.g. "equalize > quantize(qat)"
    bits: str  # w4a4, w4a4+first=w4a8, alloc, fp16, float
    w_bits: int | None
    a_bits: int | None
    alpha: float | None
    temperature: float | None
    phases: str | None
    plan: QuantPlan | None  # the quantization plan applied (allocated plans resolved)
    half_plan: HalfPlan | None
    config: dict[str, Any]  # the student as written at this sweep point
    compare_to: str | None  # report only: the student this one is compared with
    # results
    metrics: dict[str, float]  # the task's test metrics
    stages: tuple[StageRecord, ...]
    size_bytes: int
    float32_bytes: int
    params: int
    wall_s: float
    allocation: Allocation | None
    # artefacts and environment
    checkpoint: str
    data: dict[str, Any]
    experiment_config: dict[str, Any]
    versions: dict[str, Any]
    device: str
    finished_at: str
    notes: dict[str, str] = field(default_factory=dict)  # the task's (e.g. LPIPS source)
    schema: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        unknown = {metric_of(k) for k in self.metrics} - TASKS.get(self.task).metric_keys
        if unknown:
            raise ValueError(f"{sorted(unknown)} are not metrics of task {self.task}")

    @property
    def best_epoch(self) -> int | None:
        """The kept epoch of the last stage that trained."""
        epochs = [s.best_epoch for s in self.stages if s.best_epoch is not None]
        return epochs[-1] if epochs else None

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["plan"] = self.plan.to_config() if self.plan else None
        data["half_plan"] = self.half_plan.to_config() if self.half_plan else None
        data["allocation"] = self.allocation.to_dict() if self.allocation else None
        return json_safe(data)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunRecord:
        """A record from its JSON line (current schema); KeyError/TypeError when a field is
        missing or malformed."""
        values = {f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data}
        values["plan"] = QuantPlan.from_config(data["plan"]) if data["plan"] else None
        half = data["half_plan"]
        values["half_plan"] = HalfPlan.from_config(half) if half else None
        allocation = data["allocation"]
        values["allocation"] = Allocation.from_dict(allocation) if allocation else None
        values["stages"] = tuple(StageRecord(**stage) for stage in data["stages"])
        values["metrics"] = {k: v for k, v in data["metrics"].items() if v is not None}
        return cls(**values)
