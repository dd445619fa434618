"""The steps a run is made of, shared by the experiment runner and the single-model commands."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn

from qdistill.data import Augmentation, Batches, ClassificationData
from qdistill.experiment.schema import AllocationConfig, EqualizeConfig
from qdistill.metrics import evaluate_classifier
from qdistill.quant import QuantPlan, calibrate, quantize
from qdistill.quant.equalize import equalize_ranges
from qdistill.quant.sensitivity import (
    Sensitivity,
    allocate_bits,
    budget_bytes_of,
    measure_sensitivity,
)
from qdistill.train import TrainConfig, TrainResult, fit

SPLITS = ("train", "val", "test")


def evaluate_splits(
    model: nn.Module,
    data: ClassificationData,
    device: torch.device,
    batch_size: int = 256,
    splits: tuple[str, ...] = SPLITS,
) -> dict[str, float]:
    """``<split>_acc`` (%) and ``<split>_loss`` for each split."""
    metrics = {}
    for split in splits:
        result = evaluate_classifier(model, Batches(data.split(split), batch_size), device)
        metrics[f"{split}_acc"] = result["acc"]
        metrics[f"{split}_loss"] = result["loss"]
    return metrics


def training_batches(
    data: ClassificationData,
    batch_size: int,
    seed: int,
    augment: Augmentation | None = None,
) -> Batches:
    """Shuffled training batches carrying sample indices (for teacher-output caches)."""
    generator = torch.Generator().manual_seed(seed)
    return Batches(
        data.train, batch_size, shuffle=True, generator=generator, with_index=True, augment=augment
    )


def training_summary(result: TrainResult, train: TrainConfig) -> dict[str, Any]:
    return {
        "epochs": train.epochs,
        "best_epoch": result.best_epoch,
        "wall_s": round(result.wall_s, 3),
        "history": result.history,
    }


def train_with_validation(
    model: nn.Module,
    task: Any,
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
        task.training_batches(train.batch_size, seed, augment),
        train,
        loss_fn=task.loss_fn(train),
        evaluate=task.validate,
        monitor=task.monitor,
        hooks=hooks,
        device=task.device,
        desc=desc,
    )
    return training_summary(result, train)


def equalize_before_quantizing(
    model: nn.Module, task: Any, config: EqualizeConfig, log: Callable[[str], None]
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


def quantize_calibrated(
    model: nn.Module,
    bits: Any,
    batches: Iterable,
    calibration_batches: int,
    device: torch.device,
    fold_bn: bool = False,
) -> tuple[nn.Module, float]:
    """Prepare ``model`` with the plan ``bits`` and calibrate its activation ranges on
    (training) ``batches``; return the prepared model and the calibration time (s)."""
    prepared = quantize(model, bits, fold_bn=fold_bn)
    started = time.perf_counter()
    calibrate(prepared, batches, calibration_batches, device)
    return prepared, round(time.perf_counter() - started, 3)


def probe_sensitivity(
    model: nn.Module,
    task: Any,
    allocation: AllocationConfig,
    log: Callable[[str], None] = lambda line: None,
) -> tuple[float, dict[str, list[Sensitivity]]]:
    """(float validation score, each unit's Sensitivity at every probed width by label):
    each stage (or layer) of a float model quantized alone by PTQ on the task's first
    calibration batches (the same for every unit and width), scored by the task's
    validation monitor."""
    calibration = list(itertools.islice(task.calibration_batches(), allocation.calibration_batches))

    def score(m: nn.Module) -> float:
        return task.validate(m)[task.monitor]

    baseline = score(model)
    probed: dict[str, list[Sensitivity]] = {}
    for label, probe in allocation.labelled_probes.items():
        _, probed[label] = measure_sensitivity(
            model,
            probe,
            score,
            calibration,
            len(calibration),
            allocation.granularity,
            baseline=baseline,
        )
        drops = ", ".join(f"{s.unit} {s.drop:+.3f}" for s in probed[label])
        log(f"sensitivity at {label} ({task.monitor} drop): {drops}")
    return baseline, probed


def allocate_by_sensitivity(
    model: nn.Module,
    task: Any,
    allocation: AllocationConfig,
    log: Callable[[str], None] = lambda line: None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(plan, record): each unit's validation drop at every probed width, and the plan
    that spends ``allocation.budget`` where it buys the most quality per byte."""
    levels = allocation.labelled_levels
    lowest = next(iter(levels))
    baseline, probed = probe_sensitivity(model, task, allocation, log)
    # a probe other than the levels (low/high allocation) stands in for the lowest level
    measured = {label if label in levels else lowest: s for label, s in probed.items()}
    budget = budget_bytes_of(model, allocation.budget)
    plan = allocate_bits(model, measured, list(levels), budget, levels, allocation.spend_leftover)
    log(f"allocated {QuantPlan.from_config(plan).short} (budget {budget} bytes)")
    record = {
        "probe": next(iter(probed)),
        "metric": task.monitor,
        "float_score": baseline,
        "units": [s.to_dict() for s in measured[lowest]],
        "levels": {label: [s.to_dict() for s in scores] for label, scores in probed.items()},
        "budget_bytes": budget,
    }
    return plan, record
