"""The dataset registry and build_dataset()."""

from __future__ import annotations

from typing import Any

from qdistill.data.base import ClassificationData
from qdistill.registry import Registry

DATASETS: Registry = Registry("dataset")


def build_dataset(name: str, **options: Any) -> ClassificationData:
    """Load the registered dataset ``name`` with its options (e.g. ``root`` for MNIST)."""
    return DATASETS.build(name, {}, options)


def dataset_task(name: str) -> str:
    """The task family of dataset ``name`` (a factory's ``task`` attribute), known
    without loading it: ``classification`` or ``super_resolution``."""
    return getattr(DATASETS.get(name), "task", ClassificationData.task)
