"""Datasets: bundled defaults and readers for real on-disk formats."""

from qdistill.data import cifar, digits, folders, idx, sr  # noqa: F401  (register the datasets)
from qdistill.data.augment import Augmentation
from qdistill.data.base import ArraySplit, Batches, ClassificationData
from qdistill.data.registry import DATASETS, build_dataset, dataset_task

__all__ = [
    "DATASETS",
    "ArraySplit",
    "Augmentation",
    "Batches",
    "ClassificationData",
    "build_dataset",
    "dataset_task",
]
