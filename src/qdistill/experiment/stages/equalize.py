"""The ``equalize`` stage: rescale conv/linear -> ReLU -> conv/linear channel pairs of the
float model so activation and weight ranges balance before it is quantized (the model
computes the same function; see :mod:`qdistill.quant.equalize`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import Field
from torch import nn

from qdistill.experiment.stages.base import StageConfig, StageContext, StudentState, stage
from qdistill.quant.equalize import equalize_ranges
from qdistill.tasks import Task


class EqualizeStage(StageConfig):
    """``strength`` 1 gives every channel entering a layer the full activation range, 0.5
    balances activation and weight ranges; ``consumers`` (plan patterns such as
    ``[body]``) limits it to the pairs feeding those layers; ``batches`` calibration
    batches measure the ranges."""

    strength: float = Field(0.5, ge=0.0, le=1.0)
    consumers: list[str] | None = None  # plan patterns; None = every equalizable pair
    batches: int = Field(8, ge=1)


def equalize_before_quantizing(
    model: nn.Module, task: Task, config: EqualizeStage, log: Callable[[str], None]
) -> list[dict[str, Any]]:
    """Equalize the float model's activation ranges in place on the task's calibration
    batches; log and return the rescaled layer pairs."""
    pairs = equalize_ranges(
        model,
        task.calibration_batches(),
        strength=config.strength,
        consumers=config.consumers,
        max_batches=config.batches,
        device=task.device,
    )
    if not pairs:
        log("equalize: no conv/linear -> ReLU -> conv/linear pair to rescale; model unchanged")
    for pair in pairs:
        log(
            f"equalized {pair.producer} -> {pair.consumer}: {pair.channels} channels whose "
            f"ranges spread {pair.spread:.1f}x"
        )
    return [pair.to_dict() for pair in pairs]


@stage("equalize", EqualizeStage)
def run_equalize(config: EqualizeStage, state: StudentState, ctx: StageContext) -> dict[str, Any]:
    return {"pairs": equalize_before_quantizing(state.model, ctx.task, config, ctx.log)}
