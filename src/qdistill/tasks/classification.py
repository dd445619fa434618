"""Classification: cross-entropy, accuracy per split (``val_acc`` picks the best epoch)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from qdistill.data import Augmentation, Batches, ClassificationData
from qdistill.data.base import labelled_subset
from qdistill.metrics import evaluate_classifier
from qdistill.quant import convert
from qdistill.tasks.base import TASKS, Metric, Panel
from qdistill.train import TrainConfig
from qdistill.train.loop import LossFn, classification_loss

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
    labelled_fraction: float = 1.0,
) -> Batches:
    """Shuffled training batches carrying sample indices (for teacher-output caches), the
    labels of all but ``labelled_fraction`` of the images withheld."""
    generator = torch.Generator().manual_seed(seed)
    labelled = None
    if labelled_fraction < 1:
        labelled = labelled_subset(data.train.y, labelled_fraction, seed)
    return Batches(
        data.train,
        batch_size,
        shuffle=True,
        generator=generator,
        with_index=True,
        augment=augment,
        labelled=labelled,
    )


@TASKS.register("classification")
class ClassificationTask:
    kind = "classification"
    distill_loss = "kd_kl"
    monitor = "val_acc"
    headline = Metric("test_acc", "Test acc. (%)")
    integer = Metric("test_acc_integer", "Integer model acc. (%)")
    quality = (headline,)
    console = ("test_acc", "test_acc_integer")
    per_run = (
        Metric("train_acc", "Train acc."),
        Metric("val_acc", "Val acc."),
        Metric("test_acc", "Test acc."),
    )
    baselines = ()
    per_image = ()
    metric_keys = frozenset(
        {f"{split}_{kind}" for split in SPLITS for kind in ("acc", "loss")} | {integer.key}
    )
    unit = "%"

    def __init__(
        self,
        data: ClassificationData,
        device: torch.device,
        batch_size: int = 256,
        lpips_weights: str | None = None,  # image metrics only; classifiers have none
    ) -> None:
        self.data, self.device, self.batch_size = data, device, batch_size

    @property
    def num_outputs(self) -> int:
        return self.data.num_classes

    def training_batches(
        self,
        batch_size: int,
        seed: int,
        augment: Augmentation | None,
        labelled_fraction: float = 1.0,
    ):
        return training_batches(self.data, batch_size, seed, augment, labelled_fraction)

    def loss_fn(self, train: TrainConfig) -> LossFn:
        return classification_loss

    def validate(self, model: nn.Module) -> dict[str, float]:
        return evaluate_splits(model, self.data, self.device, self.batch_size, ("val",))

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        return evaluate_splits(model, self.data, self.device, self.batch_size)

    def integer_metrics(self, model: nn.Module) -> dict[str, float]:
        batches = Batches(self.data.test, self.batch_size)
        accuracy = evaluate_classifier(convert(model), batches, self.device)["acc"]
        return {self.integer.key: accuracy}

    def calibration_batches(self) -> Iterable:
        return Batches(self.data.train, self.batch_size)

    def cache_disabled_reason(self) -> str | None:
        return None

    def chance_level(self) -> float | None:
        """Validation accuracy of always answering the most frequent class; None when the
        validation split is too small to tell (under 10 samples per class)."""
        if len(self.data.val) < 10 * self.num_outputs:
            return None
        counts = torch.bincount(self.data.val.y, minlength=self.num_outputs)
        return 100.0 * counts.max().item() / len(self.data.val)

    def sample_inputs(self, count: int) -> torch.Tensor:
        return self.data.sample_inputs(count)

    def notes(self) -> dict[str, str]:
        return {}

    def prepare_outputs(self, folder: Path) -> None:
        """Classifiers produce no pictures."""

    def save_sample(self, model: nn.Module, path: Path) -> None:
        """Classifiers produce no pictures."""

    @classmethod
    def describe_data(cls, data: Mapping[str, Any]) -> list[str]:
        lines = [
            f"Data: **{data.get('name', '?')}**, inputs {data.get('input_shape')}, "
            f"{data.get('num_classes')} classes, split sizes {data.get('sizes')}."
        ]
        test_size = (data.get("sizes") or {}).get("test")
        if test_size:
            lines.append(
                f"One test sample is {100 / test_size:.2f} accuracy points; differences smaller "
                "than a few samples or than the standard errors below are noise."
            )
        return lines

    @classmethod
    def metric_notes(cls, notes: Sequence[Mapping[str, str]], metric_keys: set[str]) -> list[str]:
        return []

    @classmethod
    def picture_panels(cls, folder: Path, runs: Sequence[tuple[str, int, float]]) -> list[Panel]:
        return []
