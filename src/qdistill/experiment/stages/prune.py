"""The pruning stages: ``prune`` (unstructured: the smallest weights set to zero, kept at
zero by later training) and ``prune-channels`` (structured: whole channels removed through
the dependency graph, so the model is smaller and faster; see
:mod:`qdistill.prune.structured`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any, Literal

import torch
from pydantic import Field
from torch import nn

from qdistill.errors import ConfigError
from qdistill.experiment.stages.base import StageConfig, StageContext, StudentState, stage
from qdistill.experiment.stages.training import train_or_distill
from qdistill.hardware.benchmark import eager_latency_ms
from qdistill.prune import apply_masks, magnitude_masks, weight_sparsity
from qdistill.prune.structured import ChannelPruning, prune_channels
from qdistill.tasks import Task
from qdistill.train import TrainConfig

TAYLOR_BATCHES = 8  # training batches whose loss gradients score channels for taylor


class PruneStage(StageConfig):
    """``ratio`` of the weights set to zero, smallest |w| first, ranked over all layers
    (``scope: global``) or within each (``local``); ``ignore``: plan patterns of layers
    left whole (e.g. ``["@last"]`` for a classifier head)."""

    ratio: float = Field(gt=0.0, lt=1.0)
    scope: Literal["global", "local"] = "global"
    ignore: list[str] = Field(default_factory=list)

    @property
    def title(self) -> str:
        return f"prune({self.ratio:g})"


@stage("prune", PruneStage)
def run_prune(config: PruneStage, state: StudentState, ctx: StageContext) -> dict[str, Any]:
    masks = magnitude_masks(state.model, config.ratio, config.scope, config.ignore)
    apply_masks(state.model, masks)
    state.masks.update(masks)
    sparsity = weight_sparsity(state.model)
    ctx.log(f"pruned {config.ratio:.0%} of the weights of {len(masks)} layers")
    return {"layers": sorted(masks), "sparsity": sparsity}


def task_losses(model: nn.Module, task: Task, seed: int) -> Callable[[], Iterator[torch.Tensor]]:
    """Losses of ``model`` on the first training batches (for taylor importance)."""
    loss_fn = task.loss_fn(TrainConfig())

    def losses() -> Iterator[torch.Tensor]:
        model.train()
        for batch in islice(task.training_batches(64, seed, None), TAYLOR_BATCHES):
            yield loss_fn(model, batch)
        model.eval()

    return losses


class PruneChannelsStage(ChannelPruning, StageConfig):
    """Channel pruning (the keys of :class:`ChannelPruning`); ``finetune``: training run
    after each step but the last when ``steps > 1`` (a ``finetune`` stage after this one
    trains the final model)."""

    finetune: TrainConfig | None = None

    @property
    def title(self) -> str:
        goal = self.target
        amount = f"{goal[0]}<={goal[1]:g}" if goal else f"{self.ratio:g}"
        return f"prune-channels({self.importance},{amount})"


@stage("prune-channels", PruneChannelsStage)
def run_prune_channels(
    config: PruneChannelsStage, state: StudentState, ctx: StageContext
) -> dict[str, Any]:
    if state.masks:
        raise ConfigError("prune channels before pruning weights (prune), not after")
    model = state.model
    shapes = {name: tensor.shape for name, tensor in model.state_dict().items()}

    def finetune(_model: nn.Module, step: int) -> None:
        ctx.log(f"fine-tuning after pruning step {step}")
        train_or_distill(state, ctx, config.finetune, None)

    example = ctx.task.sample_inputs(1).to(ctx.task.device)
    report = prune_channels(
        model,
        example,
        ChannelPruning(**config.model_dump(exclude={"finetune"})),
        measure_latency_ms=lambda pruned: eager_latency_ms(pruned, example),
        gradient_batches=task_losses(model, ctx.task, ctx.seed),
        calibration_batches=ctx.task.calibration_batches,
        between_steps=finetune if config.finetune is not None else None,
    )
    state.pruned_shapes.update(
        {
            name: list(tensor.shape)
            for name, tensor in model.state_dict().items()
            if name in shapes and tensor.shape != shapes[name]
        }
    )
    ctx.log(
        f"removed channels in {len(report.channels)} layers: MACs x{report.mac_ratio:.2f}, "
        f"parameters {report.params_before:,} -> {report.params_after:,}"
    )
    return report.to_dict()
