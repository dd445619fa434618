"""In-memory classification data: splits, normalisation and fast batch iteration."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from qdistill.data.augment import Augmentation


@dataclass
class ArraySplit:
    """Inputs (N, ...) float32 and integer labels (N,) held in memory."""

    x: torch.Tensor
    y: torch.Tensor

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y):
            raise ValueError(f"{len(self.x)} inputs but {len(self.y)} labels")

    def __len__(self) -> int:
        return len(self.x)


@dataclass
class ClassificationData:
    """Train/val/test splits of one dataset plus what a model needs to know about it."""

    task: ClassVar[str] = "classification"
    name: str
    train: ArraySplit
    val: ArraySplit
    test: ArraySplit
    num_classes: int
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.x.shape[1:])

    @property
    def num_outputs(self) -> int:
        return self.num_classes

    def sample_inputs(self, count: int) -> torch.Tensor:
        """The first ``count`` test inputs (for exports and benchmarks)."""
        return self.test.x[:count]

    def split(self, name: str) -> ArraySplit:
        if name not in ("train", "val", "test"):
            raise ValueError(f"split must be train, val or test, not {name!r}")
        return getattr(self, name)

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "sizes": {s: len(self.split(s)) for s in ("train", "val", "test")},
            **self.info,
        }


# The label given to a training sample whose label is withheld (a labelled fraction < 1):
# cross-entropy ignores it; distillation still learns from the teacher on it.
UNLABELLED = -100


def labelled_subset(labels: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """A bool mask keeping ``fraction`` of each class's samples labelled (at least one per
    class), chosen at random but fixed by ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    keep = torch.zeros(len(labels), dtype=torch.bool)
    for label in torch.unique(labels).tolist():
        members = (labels == label).nonzero().flatten()
        count = max(1, round(fraction * len(members)))
        keep[members[torch.randperm(len(members), generator=generator)[:count]]] = True
    return keep


class Batches:
    """Iterates (x, y) mini-batches of an ArraySplit; reshuffled every pass when asked.

    With ``with_index`` each batch is (x, y, sample indices), for lookups such as a
    teacher-output cache; ``augment`` transforms the inputs of every batch anew;
    samples outside ``labelled`` (a bool mask) carry the label ``UNLABELLED``.
    Indexing whole in-memory tensors is far faster than a per-sample DataLoader for
    the small datasets qdistill trains on.
    """

    def __init__(
        self,
        split: ArraySplit,
        batch_size: int,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        drop_last: bool = False,
        with_index: bool = False,
        augment: Augmentation | None = None,
        labelled: torch.Tensor | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch size must be positive, got {batch_size}")
        self.split = split
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.generator = generator
        self.drop_last = drop_last
        self.with_index = with_index
        self.augment = augment if augment is not None and augment.active else None
        self.labelled = labelled

    def __len__(self) -> int:
        n = len(self.split)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        n = len(self.split)
        order = torch.randperm(n, generator=self.generator) if self.shuffle else None
        for batch in range(len(self)):
            start = batch * self.batch_size
            stop = min(start + self.batch_size, n)
            if order is None:
                index = torch.arange(start, stop)
                x, y = self.split.x[start:stop], self.split.y[start:stop]
            else:
                index = order[start:stop]
                x, y = self.split.x[index], self.split.y[index]
            if self.augment is not None:
                x = self.augment(x, self.generator)
            if self.labelled is not None:
                y = y.masked_fill(~self.labelled[index], UNLABELLED)
            yield (x, y, index) if self.with_index else (x, y)


def stratified_split(
    labels: np.ndarray, fractions: tuple[float, float], seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices of (train, val, test) with class proportions kept, fixed by ``seed``.

    ``fractions`` are the val and test fractions of the whole set.
    """
    val_fraction, test_fraction = fractions
    if val_fraction < 0 or test_fraction <= 0 or val_fraction + test_fraction >= 1:
        raise ValueError(
            f"val and test fractions must be >= 0, > 0 and sum below 1, got {fractions}"
        )
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[], [], []]
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_test = round(len(idx) * test_fraction)
        n_val = round(len(idx) * val_fraction)
        parts[2].extend(idx[:n_test])
        parts[1].extend(idx[n_test : n_test + n_val])
        parts[0].extend(idx[n_test + n_val :])
    return tuple(np.sort(np.asarray(p, dtype=np.int64)) for p in parts)


def standardize(
    train: np.ndarray, *others: np.ndarray
) -> tuple[list[np.ndarray], dict[str, float]]:
    """Scale all arrays by the training set's mean and standard deviation (one scalar each)."""
    mean, std = float(train.mean()), float(train.std()) or 1.0
    return [(a - mean) / std for a in (train, *others)], {"mean": mean, "std": std}


def standardize_channels(
    train: np.ndarray, *others: np.ndarray
) -> tuple[list[np.ndarray], dict[str, list[float]]]:
    """Scale (N, C, H, W) arrays by the training set's per-channel mean and deviation."""
    mean = train.mean(axis=(0, 2, 3), keepdims=True)
    std = train.std(axis=(0, 2, 3), keepdims=True)
    std[std == 0] = 1.0
    stats = {"mean": mean.ravel().tolist(), "std": std.ravel().tolist()}
    return [((a - mean) / std).astype(np.float32) for a in (train, *others)], stats


def to_split(x: np.ndarray, y: np.ndarray) -> ArraySplit:
    return ArraySplit(torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y).long())
