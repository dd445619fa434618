"""The dataset registry and build_dataset()."""

from __future__ import annotations

from typing import Any

from qdistill.data.base import ClassificationData
from qdistill.registry import Registry

DATASETS: Registry = Registry("dataset")


def build_dataset(name: str, **options: Any) -> ClassificationData:
    """Load the registered dataset ``name`` with its options (e.g. ``root`` for MNIST)."""
    return DATASETS.build(name, {}, options)
