"""Stages: the steps a student's recipe is made of, each a registered handler with its
own typed config.

A stage is one module: a ``StageConfig`` subclass (its YAML keys) and a handler
``run(config, state, context) -> details`` registered with :func:`stage`. The handler
changes ``state.model`` (or replaces it) and returns what it wants recorded; the runner
times it and records the model's validation metrics and size after it. ``accepts``
says which kinds of model the stage can start from (float, quantized or half) and
``produces`` what the model is afterwards, so a recipe that quantizes twice or
equalizes a quantized model fails when the experiment is loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import torch
from pydantic import ConfigDict
from torch import nn

from qdistill.config import StrictConfig
from qdistill.data import Augmentation
from qdistill.distill import DistillConfig, TeacherOutputCache
from qdistill.prune import keep_pruned
from qdistill.quant import QuantPlan
from qdistill.quant.sensitivity import Allocation
from qdistill.registry import Registry
from qdistill.tasks import Task

ModelKind = Literal["float", "quantized", "half"]


class StageConfig(StrictConfig):
    """The base of every stage's config; ``stage`` is the name it is registered under."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
    stage: ClassVar[str] = ""

    @property
    def title(self) -> str:
        """How the stage is named in a recipe's description (e.g. ``quantize(qat)``)."""
        return self.stage

    @property
    def needs_teacher(self) -> bool:
        """Whether the stage learns from the experiment's teacher."""
        return False

    @property
    def chooses_plan(self) -> bool:
        """Whether the stage chooses a quantization plan for a later stage to apply."""
        return False

    @property
    def needs_plan(self) -> bool:
        """Whether the stage applies the plan an earlier stage chose."""
        return False


@dataclass
class StudentState:
    """What flows through a recipe: the model, the teacher, and what one stage leaves for
    a later one (the plan a mixed-precision stage chose for the next quantize stage, the
    masks of pruned weights that later training keeps at zero)."""

    model: nn.Module
    teacher: nn.Module | None = None
    plan: QuantPlan | None = None
    masks: dict[str, torch.Tensor] = field(default_factory=dict)
    fold_bn: bool = False  # BatchNorm folded when quantizing: checkpoints must know
    allocation: Allocation | None = None  # what a mixed-precision stage measured and chose
    pruned_shapes: dict[str, list[int]] = field(default_factory=dict)  # changed by pruning


@dataclass(frozen=True)
class StageContext:
    """What a stage may use from its run: the task (data, loss, metrics), the seed, a log
    line prefix, the training-input augmentation, the teacher-output cache and the
    per-epoch training hooks."""

    task: Task
    seed: int
    desc: str
    augment: Augmentation
    log: Callable[[str], None]
    teacher_cache: Callable[[nn.Module, DistillConfig], TeacherOutputCache | None]
    hooks: dict[str, list[Callable]] | None = None

    def fit_options(self, state: StudentState) -> dict[str, Any]:
        """What every ``fit`` of a stage is given: the task's device and validation
        monitor, the context's hooks, and keeping pruned weights at zero when the model
        was pruned."""
        hooks = {name: list(fns) for name, fns in (self.hooks or {}).items()}
        if state.masks:
            hooks.setdefault("after_backward", []).append(keep_pruned(state.masks))
        options = {"device": self.task.device, "monitor": self.task.monitor}
        return {**options, "hooks": hooks} if hooks else options


StageHandler = Callable[[Any, StudentState, StageContext], dict[str, Any]]


@dataclass(frozen=True)
class StageDefinition:
    name: str
    config: type[StageConfig]
    run: StageHandler
    accepts: frozenset[ModelKind]
    produces: ModelKind | None  # None: the model stays the kind it was


STAGES: Registry[StageDefinition] = Registry("stage")


def stage(
    name: str,
    config: type[StageConfig],
    *,
    accepts: tuple[ModelKind, ...] = ("float",),
    produces: ModelKind | None = None,
) -> Callable[[StageHandler], StageHandler]:
    """Register the decorated handler as stage ``name``, configured by ``config``."""

    def register(handler: StageHandler) -> StageHandler:
        config.stage = name
        STAGES.register(name)(StageDefinition(name, config, handler, frozenset(accepts), produces))
        return handler

    return register


def definition_of(config: StageConfig) -> StageDefinition:
    return STAGES.get(config.stage)
