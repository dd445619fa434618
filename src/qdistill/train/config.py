"""Training configuration, validated on load (shared by the Python API and YAML files)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from qdistill.config import StrictConfig, added_later


class OptimizerConfig(StrictConfig):
    name: Literal["sgd", "adam", "adamw"] = "adam"
    lr: float = Field(1e-3, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)  # sgd only
    nesterov: bool = True  # sgd only
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)  # adam/adamw only


class ScheduleConfig(StrictConfig):
    """Learning-rate schedule over epochs, applied per step (fractional epochs).

    Linear warm-up over ``warmup_epochs``, then: constant; step (x gamma every
    ``step_size`` epochs); multistep (x gamma at each of ``milestones``); cosine
    (down to ``min_lr_ratio`` x the base rate at the last epoch).
    """

    name: Literal["constant", "step", "multistep", "cosine"] = "cosine"
    warmup_epochs: float = Field(0.0, ge=0)
    step_size: int = Field(30, ge=1)
    milestones: tuple[int, ...] = ()
    gamma: float = Field(0.1, gt=0, le=1)
    min_lr_ratio: float = Field(0.0, ge=0, le=1)


class TrainConfig(StrictConfig):
    epochs: int = Field(20, ge=0)
    batch_size: int = Field(64, ge=1)
    optimizer: OptimizerConfig = OptimizerConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    grad_accumulation: int = Field(1, ge=1)
    grad_clip: float | None = Field(None, gt=0)
    # Evaluate (and return) the weights of the best validation epoch, not the last.
    restore_best: bool = True
    # Training loss of image-to-image models (classifiers always use cross-entropy).
    pixel_loss: Literal["l1", "l2", "charbonnier"] = "l1"
    # Mixed precision of a float model's forward pass: bf16 autocast, or fp16 autocast
    # with loss scaling (meant for GPUs). Weights and optimiser stay fp32; a model with
    # fake quantizers always trains in fp32.
    precision: Literal["fp32", "bf16", "fp16"] = added_later("fp32")
    # Classification: learn from the labels of only this fraction of the training images
    # (a seeded, class-stratified subset); with distillation the teacher's outputs still
    # teach on every image (semi-supervised distillation).
    labelled_fraction: float = added_later(1.0, gt=0, le=1)

    @model_validator(mode="after")
    def _warmup_fits(self) -> TrainConfig:
        if self.epochs and self.schedule.warmup_epochs >= self.epochs:
            raise ValueError(
                f"schedule.warmup_epochs ({self.schedule.warmup_epochs}) must be below "
                f"epochs ({self.epochs})"
            )
        return self
