"""``qdistill prune``: channel-prune a float checkpoint, optionally fine-tune (between
iterative steps and after), and save a checkpoint that records its pruned shapes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from qdistill.console import console
from qdistill.errors import CheckpointError
from qdistill.experiment.commands import checkpoint_data, save_derived
from qdistill.experiment.stages.prune import task_losses
from qdistill.experiment.stages.training import train_with_validation
from qdistill.hardware.benchmark import eager_latency_ms
from qdistill.models import build_model, load_model
from qdistill.paths import writable_file
from qdistill.prune.reshape import changed_shapes
from qdistill.prune.structured import ChannelPruning, PruneReport, prune_channels
from qdistill.quant import is_quantized, model_size
from qdistill.runtime import collect_versions, seed_everything
from qdistill.tasks import make_task
from qdistill.train import TrainConfig


@dataclass(frozen=True)
class PruneSummary:
    """The headline test metric before, right after pruning and after fine-tuning."""

    headline: str
    report: PruneReport
    before: float
    pruned: float
    finetuned: float | None
    bytes_before: int
    bytes_after: int


def pruned_shapes_of(model: nn.Module, metadata: dict, data) -> dict[str, list[int]]:
    """The tensors of ``model`` whose shape differs from the checkpoint's registered
    architecture unpruned (built on the meta device)."""
    with torch.device("meta"):
        original = build_model(
            metadata["model"],
            data.input_shape,
            data.num_outputs,
            **metadata.get("model_options", {}),
        )
    return changed_shapes(model, original)


def prune_checkpoint(
    checkpoint: Path,
    pruning: ChannelPruning,
    finetune: TrainConfig | None,
    seed: int,
    out: Path,
) -> PruneSummary:
    """Prune a float checkpoint's channels; fine-tune with ``finetune`` after each step
    and at the end (its epochs per step); save to ``out``."""
    writable_file(out)
    model, metadata = load_model(checkpoint)
    if is_quantized(model):
        raise CheckpointError(f"{checkpoint} is quantized; prune the float model, then quantize")
    data, data_record = checkpoint_data(metadata, None, {})
    task = make_task(data, torch.device("cpu"))
    key = task.headline.key
    before, bytes_before = task.evaluate(model)[key], model_size(model).total_bytes
    seed_everything(seed)

    def finetune_step(pruned: nn.Module, step: int) -> None:
        train_with_validation(pruned, task, finetune, seed, f"finetune step {step}")

    example = data.sample_inputs(1)
    report = prune_channels(
        model,
        example,
        pruning,
        measure_latency_ms=lambda pruned: eager_latency_ms(pruned, example),
        gradient_batches=task_losses(model, task, seed),
        calibration_batches=task.calibration_batches,
        between_steps=finetune_step if finetune is not None else None,
    )
    pruned = task.evaluate(model)[key]
    console.print(
        f"pruned {len(report.channels)} layers in {report.seconds:.2f}s: MACs x"
        f"{report.mac_ratio:.2f}, parameters {report.params_before:,} -> {report.params_after:,}"
    )
    if finetune is not None:
        train_with_validation(model, task, finetune, seed, "finetune")
    metrics = task.evaluate(model)
    finetuned = metrics[key] if finetune is not None else None
    extra = {
        "data": data_record,
        "pruning": {**pruning.model_dump(mode="json"), **report.to_dict()},
        "finetune": finetune.model_dump(mode="json") if finetune else None,
        "seed": seed,
        "source": str(checkpoint),
        "metrics": metrics,
        "versions": collect_versions(),
    }
    save_derived(out, model, metadata, data, extra, pruned_shapes_of(model, metadata, data))
    return PruneSummary(
        key,
        report,
        before,
        pruned,
        finetuned,
        bytes_before,
        model_size(model).total_bytes,
    )
