"""The ``mixed-precision`` stage: measure each stage's (or layer's) sensitivity to
quantization on the validation split and choose the plan that spends a size budget where
it buys the most quality; the next ``quantize`` stage applies it."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator
from torch import nn

from qdistill.experiment.stages.base import StageConfig, StageContext, StudentState, stage
from qdistill.experiment.stages.fields import LayerSpecField, PlanField
from qdistill.quant import LayerQuantSpec, QuantPlan
from qdistill.quant.sensitivity import (
    Allocation,
    Sensitivity,
    SensitivityProbe,
    allocate_bits,
    budget_bytes_of,
    measure_sensitivity,
)
from qdistill.tasks import Task


def number_repeats(labels: list[str]) -> list[str]:
    """Labels made unique: one that occurs more than once gets its 1-based position,
    e.g. ``w4a4-2`` (same widths, other quantizer options)."""
    return [f"{lb}-{i + 1}" if labels.count(lb) > 1 else lb for i, lb in enumerate(labels)]


class MixedPrecisionStage(StageConfig):
    """Each unit is quantized alone at ``probe`` bits (default ``low``) and scored on the
    validation split; the most sensitive get ``high`` bits, the rest ``low``, within the
    size ``budget`` (bytes, or a uniform plan such as w6a6 whose size it must not
    exceed). With ``levels`` (low to high; replaces low/high/probe) every unit is probed
    at every level and each gets the level that buys the most quality per byte.
    ``spend_leftover`` gives budget the measured gains leave unspent to the most
    sensitive units, a level at a time. ``label`` names the plan in run names."""

    low: LayerSpecField = "w4a4"
    high: LayerSpecField = "w8a8"
    levels: list[LayerSpecField] | None = None
    budget: int | PlanField = "w6a6"
    probe: LayerSpecField | None = None
    granularity: Literal["stages", "layers"] = "stages"
    calibration_batches: int = Field(8, ge=1)
    spend_leftover: bool = False
    label: str = Field("alloc", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

    model_config = ConfigDict(validate_default=True)

    @model_validator(mode="after")
    def _levels_replace_low_high(self) -> MixedPrecisionStage:
        if self.levels is not None:
            if self.model_fields_set & {"low", "high", "probe"}:
                raise ValueError("give either levels or low/high/probe, not both")
            if len(self.levels) < 2 or len(set(self.levels)) < len(self.levels):
                raise ValueError("levels needs at least two different specs, low to high")
        if isinstance(self.budget, int) and self.budget < 1:
            raise ValueError(f"budget must be positive bytes, got {self.budget}")
        return self

    @property
    def chooses_plan(self) -> bool:
        return True

    @property
    def labelled_levels(self) -> dict[str, LayerQuantSpec]:
        """The levels, low to high, by a readable label (``w4a4``; equal short names are
        numbered ``w4a4-1``, ``w4a4-2``)."""
        levels = list(self.levels) if self.levels else [self.low, self.high]
        return dict(zip(number_repeats([level.short for level in levels]), levels, strict=True))

    @property
    def labelled_probes(self) -> dict[str, LayerQuantSpec]:
        """The widths each unit is measured at, by label (all the levels, or the one
        ``probe``, by default ``low``)."""
        if self.levels:
            return self.labelled_levels
        probe = self.probe or self.low
        return {probe.short: probe}


def probe_sensitivity(
    model: nn.Module,
    task: Task,
    config: MixedPrecisionStage,
    log: Callable[[str], None] = lambda line: None,
) -> SensitivityProbe:
    """Each stage (or layer) of a float model quantized alone by PTQ at every probed width
    on the task's first calibration batches (the same for every unit and width), scored
    by the task's validation monitor."""
    calibration = list(itertools.islice(task.calibration_batches(), config.calibration_batches))

    def score(m: nn.Module) -> float:
        return task.validate(m)[task.monitor]

    baseline = score(model)
    probed: dict[str, list[Sensitivity]] = {}
    for label, probe in config.labelled_probes.items():
        _, probed[label] = measure_sensitivity(
            model,
            probe,
            score,
            calibration,
            len(calibration),
            config.granularity,
            baseline=baseline,
        )
        drops = ", ".join(f"{s.unit} {s.drop:+.3f}" for s in probed[label])
        log(f"sensitivity at {label} ({task.monitor} drop): {drops}")
    return SensitivityProbe(task.monitor, baseline, probed)


def allocate_by_sensitivity(
    model: nn.Module,
    task: Task,
    config: MixedPrecisionStage,
    log: Callable[[str], None] = lambda line: None,
) -> Allocation:
    """Each unit's validation drop at every probed width, and the plan that spends
    ``config.budget`` where it buys the most quality per byte."""
    levels = config.labelled_levels
    lowest = next(iter(levels))
    probed = probe_sensitivity(model, task, config, log)
    # a probe other than the levels (low/high allocation) stands in for the lowest level
    measured = {label if label in levels else lowest: s for label, s in probed.levels.items()}
    budget = budget_bytes_of(model, config.budget)
    plan = QuantPlan.from_config(
        allocate_bits(model, measured, list(levels), budget, levels, config.spend_leftover)
    )
    log(f"allocated {plan.short} (budget {budget} bytes)")
    probe = next(iter(probed.levels))
    return Allocation(probed.metric, probed.float_score, probed.levels, probe, budget, plan)


@stage("mixed-precision", MixedPrecisionStage)
def run_mixed_precision(
    config: MixedPrecisionStage, state: StudentState, ctx: StageContext
) -> dict[str, Any]:
    state.allocation = allocate_by_sensitivity(state.model, ctx.task, config, ctx.log)
    state.plan = state.allocation.plan
    return {"plan": state.plan.short, "budget_bytes": state.allocation.budget_bytes}
