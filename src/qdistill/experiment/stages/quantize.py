"""The ``quantize`` stage: prepare the float model with a plan and calibrate its ranges
(``ptq``); then train it (``qat``, with distillation when ``distill`` is given) or run
the QKD phases (``qkd``: self-study, co-study, tutoring)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from qdistill.distill import DistillConfig, QKDPhases, qkd
from qdistill.experiment.stages.base import StageConfig, StageContext, StudentState, stage
from qdistill.experiment.stages.fields import PlanField
from qdistill.experiment.stages.training import train_or_distill, training_summary
from qdistill.quant import QuantPlan, calibrate, quantize
from qdistill.runtime import seed_everything
from qdistill.train import TrainConfig


class QuantizeStage(StageConfig):
    """``bits``: the plan (``w4a4``, ``{"*": w4a4, "@first": w4a8}``); left out, the plan
    an earlier ``mixed-precision`` stage chose. ``train`` is QAT's recipe, ``phases``
    QKD's; ``distill`` makes QAT learn from the teacher and sets QKD's co-study and
    tutoring (their defaults otherwise)."""

    mode: Literal["ptq", "qat", "qkd"] = "ptq"
    bits: PlanField | None = None
    calibration_batches: int = Field(8, ge=1)
    fold_bn: bool = False
    train: TrainConfig | None = None
    distill: DistillConfig | None = None
    phases: QKDPhases | None = None

    @model_validator(mode="after")
    def _fits_mode(self) -> QuantizeStage:
        mode = self.mode
        if mode == "ptq" and (self.train or self.distill or self.phases):
            raise ValueError("mode ptq only calibrates; remove train, distill and phases")
        if mode == "qkd" and self.phases is None:
            raise ValueError("mode qkd needs 'phases' (self_study, co_study, tutoring)")
        if mode == "qkd" and self.train is not None:
            raise ValueError("mode qkd trains per phase; move 'train' under 'phases'")
        if mode == "qat" and self.phases is not None:
            raise ValueError("'phases' belong to mode qkd")
        phases = self.phases
        trainings = [
            self.train,
            *((phases.self_study, phases.co_study, phases.tutoring) if phases else ()),
        ]
        if any(t is not None and t.precision != "fp32" for t in trainings):
            raise ValueError(
                "precision bf16/fp16 is for float training; quantization-aware training "
                "runs in fp32 (its fake quantizers round in fp32), so remove it here"
            )
        return self

    @property
    def title(self) -> str:
        return f"quantize({self.mode})"

    @property
    def distillation(self) -> DistillConfig | None:
        """The distillation in force: QKD's co-study and tutoring distil (with the defaults
        when none are given); its self-study alone does not."""
        if self.mode != "qkd":
            return self.distill
        if not (self.phases.co_study or self.phases.tutoring):
            return None
        return self.distill or DistillConfig()

    @property
    def needs_teacher(self) -> bool:
        return self.distillation is not None

    @property
    def needs_plan(self) -> bool:
        return self.bits is None


def quantize_calibrated(
    model: nn.Module,
    plan: QuantPlan,
    batches: Iterable,
    calibration_batches: int,
    device: torch.device,
    fold_bn: bool = False,
) -> tuple[nn.Module, float]:
    """Prepare ``model`` with ``plan`` and calibrate its activation ranges on (training)
    ``batches``; return the prepared model and the calibration time (s)."""
    prepared = quantize(model, plan, fold_bn=fold_bn)
    started = time.perf_counter()
    calibrate(prepared, batches, calibration_batches, device)
    return prepared, round(time.perf_counter() - started, 3)


def _run_qkd(config: QuantizeStage, state: StudentState, ctx: StageContext) -> dict[str, Any]:
    seed_everything(ctx.seed)
    distillation = config.distillation
    phases = config.phases
    results = qkd(
        state.model,
        state.teacher,
        lambda train: ctx.task.training_batches(
            train.batch_size, ctx.seed, ctx.augment, train.labelled_fraction
        ),
        phases,
        distillation,
        evaluate=ctx.task.validate,
        desc=ctx.desc,
        cache_factory=lambda tutor: ctx.teacher_cache(tutor, distillation),
        task_loss=ctx.task.loss_fn(phases.self_study or TrainConfig()),
        **ctx.fit_options(state),
    )
    trains = dict(phases.named())
    return {"phases": {name: training_summary(r, trains[name]) for name, r in results.items()}}


@stage("quantize", QuantizeStage, produces="quantized")
def run_quantize(config: QuantizeStage, state: StudentState, ctx: StageContext) -> dict[str, Any]:
    plan = config.bits or state.plan
    state.model, calibration_s = quantize_calibrated(
        state.model,
        plan,
        ctx.task.calibration_batches(),
        config.calibration_batches,
        ctx.task.device,
        config.fold_bn,
    )
    state.plan, state.fold_bn = plan, config.fold_bn
    details: dict[str, Any] = {"plan": plan.short, "calibration_s": calibration_s}
    if config.mode == "qat":
        details["training"] = train_or_distill(
            state, ctx, config.train or TrainConfig(), config.distill
        )
    elif config.mode == "qkd":
        details["training"] = _run_qkd(config, state, ctx)
    return details
