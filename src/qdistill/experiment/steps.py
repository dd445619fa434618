"""The steps a run is made of, shared by the experiment runner and the single-model commands."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from qdistill.data import Augmentation, Batches, ClassificationData
from qdistill.metrics import evaluate_classifier
from qdistill.quant import calibrate, convert, quantize
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


def validator(
    data: ClassificationData, device: torch.device, batch_size: int = 256
) -> Callable[[nn.Module], dict[str, float]]:
    """The per-epoch validation used to pick the best epoch."""
    return lambda model: evaluate_splits(model, data, device, batch_size, ("val",))


def training_summary(result: TrainResult, train: TrainConfig) -> dict[str, Any]:
    return {
        "epochs": train.epochs,
        "best_epoch": result.best_epoch,
        "wall_s": round(result.wall_s, 3),
        "history": result.history,
    }


def train_with_validation(
    model: nn.Module,
    data: ClassificationData,
    train: TrainConfig,
    seed: int,
    device: torch.device,
    desc: str,
    eval_batch_size: int = 256,
    augment: Augmentation | None = None,
) -> dict[str, Any]:
    """Train on the train split, validating every epoch; return a summary for records."""
    result = fit(
        model,
        training_batches(data, train.batch_size, seed, augment),
        train,
        evaluate=validator(data, device, eval_batch_size),
        device=device,
        desc=desc,
    )
    return training_summary(result, train)


def quantize_calibrated(
    model: nn.Module,
    bits: Any,
    data: ClassificationData,
    calibration_batches: int,
    device: torch.device,
    fold_bn: bool = False,
    batch_size: int = 256,
) -> tuple[nn.Module, float]:
    """Prepare ``model`` with the plan ``bits`` and calibrate its activation ranges on
    training batches; return the prepared model and the calibration time (s)."""
    prepared = quantize(model, bits, fold_bn=fold_bn)
    started = time.perf_counter()
    calibrate(prepared, Batches(data.train, batch_size), calibration_batches, device)
    return prepared, round(time.perf_counter() - started, 3)


def integer_test_accuracy(
    model: nn.Module, data: ClassificationData, device: torch.device, batch_size: int = 256
) -> float:
    """Test accuracy of the converted (integer-arithmetic) model."""
    return evaluate_classifier(convert(model), Batches(data.test, batch_size), device)["acc"]
