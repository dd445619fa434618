"""The dataset registry and build_dataset()."""

from __future__ import annotations

from typing import Any

from qdistill.data.base import ClassificationData
from qdistill.errors import DatasetError
from qdistill.registry import Registry

SPLITS = ("train", "val", "test")

DATASETS: Registry = Registry("dataset")


def build_dataset(name: str, **options: Any) -> ClassificationData:
    """Load the registered dataset ``name`` with its options (e.g. ``root`` for MNIST),
    checked: every split holds samples and every label names a class."""
    data = DATASETS.build(name, {}, options)
    check_splits(data)
    return data


def check_splits(data: Any) -> None:
    """Every split holds samples (an evaluation-only dataset needs only its test split)
    and every label names a class."""
    needed = ("test",) if getattr(data, "evaluation_only", False) else SPLITS
    for split in needed:
        if len(data.split(split)) == 0:
            raise DatasetError(
                f"dataset {data.name!r} has an empty {split} split; raise the option that "
                f"sizes it (e.g. {split}_fraction or {split}_images) above 0: training keeps "
                "the best epoch by validation and tests on test"
            )
    if data.task != ClassificationData.task:
        return
    for split in SPLITS:
        labels = data.split(split).y
        low, high = int(labels.min()), int(labels.max())
        if low < 0 or high >= data.num_classes:
            raise DatasetError(
                f"dataset {data.name!r}: {split} labels range {low}..{high} but it has "
                f"{data.num_classes} classes (0..{data.num_classes - 1}); the label file is "
                "corrupt or belongs to another dataset"
            )


def dataset_task(name: str) -> str:
    """The task family of dataset ``name`` (a factory's ``task`` attribute), known
    without loading it: ``classification`` or ``super_resolution``."""
    return getattr(DATASETS.get(name), "task", ClassificationData.task)
