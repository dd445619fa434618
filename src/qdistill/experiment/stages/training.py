"""Training stages: ``train`` (the task loss), ``distill`` (learn from the teacher) and
``finetune`` (either, on whatever the model is by then: float, pruned or quantized).

Each starts from the run's seed, so a recipe's result does not depend on what ran
before it in the same process.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from qdistill.data import Augmentation
from qdistill.distill import DistillConfig, distill
from qdistill.errors import DivergenceError
from qdistill.experiment.stages.base import StageConfig, StageContext, StudentState, stage
from qdistill.runtime import seed_everything
from qdistill.tasks import Task
from qdistill.train import TrainConfig, TrainResult, fit


def training_summary(result: TrainResult, train: TrainConfig) -> dict[str, Any]:
    return {
        "epochs": train.epochs,
        "best_epoch": result.best_epoch,
        "wall_s": round(result.wall_s, 3),
        "history": result.history,
    }


def train_with_validation(
    model: nn.Module,
    task: Task,
    train: TrainConfig,
    seed: int,
    desc: str,
    augment: Augmentation | None = None,
    hooks: dict[str, list[Callable]] | None = None,
) -> dict[str, Any]:
    """Train on the task's training data with its loss, validating every epoch (the best
    epoch by the task's monitor is kept); return a summary for records."""
    result = fit(
        model,
        task.training_batches(train.batch_size, seed, augment, train.labelled_fraction),
        train,
        loss_fn=task.loss_fn(train),
        evaluate=task.validate,
        monitor=task.monitor,
        hooks=hooks,
        device=task.device,
        desc=desc,
    )
    return training_summary(result, train)


# A float model must beat chance by this much (in the monitor's unit, accuracy points).
CHANCE_MARGIN = 1.0


def check_learned(task: Task, summary: dict[str, Any], desc: str) -> None:
    """Refuse a trained float model whose best validation score is no better than chance
    (a diverged or broken training run), before anything caches or reuses it."""
    chance = task.chance_level()
    scores = [epoch[task.monitor] for epoch in summary["history"] if task.monitor in epoch]
    if chance is None or not scores or max(scores) > chance + CHANCE_MARGIN:
        return
    raise DivergenceError(
        f"{desc}: best {task.monitor} {max(scores):.2f} after {summary['epochs']} epoch(s) "
        f"is no better than chance ({chance:.2f}); the training diverged or learned "
        "nothing: check the learning rate (too high or too low) and the labels, or train longer"
    )


def train_or_distill(
    state: StudentState, ctx: StageContext, train: TrainConfig, config: DistillConfig | None
) -> dict[str, Any]:
    """Train ``state.model`` in place from the run's seed: on the task loss, or with
    distillation from the teacher when ``config`` is given."""
    seed_everything(ctx.seed)
    task, options = ctx.task, ctx.fit_options(state)
    if config is None:
        return train_with_validation(
            state.model, task, train, ctx.seed, ctx.desc, ctx.augment, options.get("hooks")
        )
    result = distill(
        state.model,
        state.teacher,
        task.training_batches(train.batch_size, ctx.seed, ctx.augment, train.labelled_fraction),
        train,
        config,
        cache=ctx.teacher_cache(state.teacher, config),
        evaluate=task.validate,
        desc=ctx.desc,
        **options,
    )
    return training_summary(result, train)


class TrainStage(StageConfig, TrainConfig):
    """Train on the task's loss; the keys are those of ``train`` (epochs, optimizer, ...)."""


class DistillStage(StageConfig, DistillConfig):
    """Learn from the teacher (the keys of ``distill``) with the ``train`` recipe."""

    train: TrainConfig = TrainConfig()

    @property
    def needs_teacher(self) -> bool:
        return True


class FinetuneStage(StageConfig, TrainConfig):
    """Train further (the keys of ``train``), with ``distill`` from the teacher if given."""

    distill: DistillConfig | None = None

    @property
    def needs_teacher(self) -> bool:
        return self.distill is not None


@stage("train", TrainStage)
def run_train(config: TrainStage, state: StudentState, ctx: StageContext) -> dict[str, Any]:
    return train_or_distill(state, ctx, config, None)


@stage("distill", DistillStage)
def run_distill(config: DistillStage, state: StudentState, ctx: StageContext) -> dict[str, Any]:
    return train_or_distill(state, ctx, config.train, config)


@stage("finetune", FinetuneStage, accepts=("float", "quantized"))
def run_finetune(config: FinetuneStage, state: StudentState, ctx: StageContext) -> dict[str, Any]:
    return train_or_distill(state, ctx, config, config.distill)
