"""Distillation schedules built on the one training loop.

- offline KD: a frozen teacher (outputs optionally cached) teaches the student;
- co-study: teacher and student train together, each towards the other;
- QKD (Kim et al. 2019): self-study (QAT on the task loss) -> co-study -> tutoring
  (frozen teacher), any phase skippable.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

from torch import nn

from qdistill.distill.cache import TeacherOutputCache
from qdistill.distill.config import DistillConfig, QKDPhases
from qdistill.distill.distiller import Distiller, Mode
from qdistill.train import TrainConfig, TrainResult, fit
from qdistill.train.loop import LossFn, classification_loss

Evaluate = Callable[[nn.Module], dict[str, float]]


def distill(
    student: nn.Module,
    teacher: nn.Module,
    batches: Iterable,
    train: TrainConfig,
    config: DistillConfig,
    *,
    mode: Mode = "offline",
    cache: TeacherOutputCache | None = None,
    evaluate: Evaluate | None = None,
    desc: str = "distill",
    **fit_options: Any,
) -> TrainResult:
    """Train ``student`` (in place) with distillation from ``teacher``.

    In ``co_study`` mode the teacher is trained too (in place); offline it is frozen.
    Batches may carry sample indices (``Batches(..., with_index=True)``) for the cache.
    """
    distiller = Distiller(student, teacher, config, mode=mode, cache=cache)
    if config.features:
        distiller.prepare(next(iter(batches)))
    also_train = [*distiller.trainable_terms(), *([teacher] if mode == "co_study" else [])]
    with distiller.active():
        return fit(
            student,
            batches,
            train,
            loss_fn=distiller.loss,
            evaluate=evaluate,
            also_train=also_train,
            desc=desc,
            **fit_options,
        )


def qkd(
    student: nn.Module,
    teacher: nn.Module,
    batches: Iterable | Callable[[TrainConfig], Iterable],
    phases: QKDPhases,
    config: DistillConfig,
    *,
    evaluate: Evaluate | None = None,
    cache_factory: Callable[[nn.Module], TeacherOutputCache | None] | None = None,
    task_loss: LossFn = classification_loss,
    desc: str = "qkd",
    **fit_options: Any,
) -> dict[str, TrainResult]:
    """Run the QKD phases on a prepared (quantized, calibrated) ``student`` in place.

    The teacher is copied before co-study, so the caller's teacher is never changed.
    ``batches`` is an iterable of batches, or a function giving the batches for a
    phase's TrainConfig (so each phase can use its own batch size).
    ``cache_factory(teacher)`` may supply an output cache for tutoring's frozen teacher.
    ``task_loss`` is self-study's loss (cross-entropy; a pixel loss for image outputs).
    """
    results: dict[str, TrainResult] = {}
    tutor = teacher
    make_batches = batches if callable(batches) else (lambda _train: batches)
    for name, train in phases.named():
        label = f"{desc} {name.replace('_', '-')}"
        phase_batches = make_batches(train)
        if name == "self_study":
            results[name] = fit(
                student,
                phase_batches,
                train,
                loss_fn=task_loss,
                evaluate=evaluate,
                desc=label,
                **fit_options,
            )
        else:
            co_study = name == "co_study"
            if co_study:
                tutor = copy.deepcopy(teacher)  # the caller's teacher is never changed
            cache = None
            if not co_study and cache_factory is not None and not config.features:
                cache = cache_factory(tutor)
            results[name] = distill(
                student,
                tutor,
                phase_batches,
                train,
                config,
                mode="co_study" if co_study else "offline",
                cache=cache,
                evaluate=evaluate,
                desc=label,
                **fit_options,
            )
    return results
