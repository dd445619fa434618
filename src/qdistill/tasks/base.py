"""The Task protocol: everything that differs between task families, asked by name.

A task owns its training batches and loss, its validation and test metrics (and which
one is the headline and which picks the best epoch), the columns a report shows and
the pictures it draws. The runner and the report ask the task; neither guesses from
metric names. A new family is one module with a class registered in ``TASKS``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import torch
from torch import nn

from qdistill.data import Augmentation
from qdistill.registry import Registry
from qdistill.train import TrainConfig
from qdistill.train.loop import LossFn


@dataclass(frozen=True)
class Metric:
    """One number a task reports: its record key, table header and shown precision."""

    key: str
    label: str
    digits: int = 2


@dataclass(frozen=True)
class Baseline:
    """A reference computed without a model (e.g. bicubic upscaling), recorded in every
    run's metrics under ``prefix + metric key`` and shown as its own table row."""

    name: str
    method: str
    prefix: str


@dataclass(frozen=True)
class Panel:
    """One picture of a report's picture grid."""

    label: str
    path: Path


class Task(Protocol):
    """What the runner, the single-model commands and the report need from a task."""

    kind: ClassVar[str]  # the registry name, recorded with every run
    distill_loss: ClassVar[str]  # the output distillation loss that fits its models
    monitor: ClassVar[str]  # validation metric that picks the best epoch (higher is better)
    headline: ClassVar[Metric]  # the test metric a run is judged by
    integer: ClassVar[Metric]  # the headline of the converted (integer) model
    quality: ClassVar[tuple[Metric, ...]]  # test metrics of the results table
    console: ClassVar[tuple[str, ...]]  # metric keys the terminal table keeps
    per_run: ClassVar[tuple[Metric, ...]]  # metrics of the report's per-run table
    # test metrics also recorded per test image, as "<key>@<image>" (baselines' too)
    per_image: ClassVar[tuple[Metric, ...]]
    baselines: ClassVar[tuple[Baseline, ...]]
    metric_keys: ClassVar[frozenset[str]]  # every metric a run of this task records
    unit: ClassVar[str]  # printed after headline values

    device: torch.device

    @property
    def num_outputs(self) -> int: ...

    def training_batches(
        self,
        batch_size: int,
        seed: int,
        augment: Augmentation | None,
        labelled_fraction: float = 1.0,
    ) -> Iterable: ...

    def loss_fn(self, train: TrainConfig) -> LossFn: ...

    def validate(self, model: nn.Module) -> dict[str, float]: ...

    def evaluate(self, model: nn.Module) -> dict[str, float]: ...

    def integer_metrics(self, model: nn.Module) -> dict[str, float]: ...

    def calibration_batches(self) -> Iterable: ...

    def chance_level(self) -> float | None:
        """The ``monitor`` value of a model that learned nothing (None: no such level)."""
        ...

    def cache_disabled_reason(self) -> str | None: ...

    def sample_inputs(self, count: int) -> torch.Tensor: ...

    def notes(self) -> dict[str, str]:
        """Facts about this evaluation worth keeping with each record (e.g. where LPIPS
        weights came from, or why it is unavailable)."""

    def prepare_outputs(self, folder: Path) -> None:
        """Write the run-independent pictures (inputs, references) once."""

    def save_sample(self, model: nn.Module, path: Path) -> None:
        """Write the model's output for the fixed sample picture (if the task has one)."""

    @classmethod
    def describe_data(cls, data: Mapping[str, Any]) -> list[str]:
        """Report sentences about a dataset summary (as recorded with every run)."""

    @classmethod
    def metric_notes(cls, notes: Sequence[Mapping[str, str]], metric_keys: set[str]) -> list[str]:
        """Report sentences explaining the metrics, given the runs' notes and keys."""

    @classmethod
    def picture_panels(cls, folder: Path, runs: Sequence[tuple[str, int, float]]) -> list[Panel]:
        """The picture grid of ``runs`` ((name, seed, headline value)) from the pictures in
        ``folder``; empty when the task draws none."""


TASKS: Registry[type[Task]] = Registry("task")


def sample_path(folder: Path, name: str, seed: int) -> Path:
    """Where a run's sample picture is written (see :meth:`Task.save_sample`)."""
    return folder / f"{name}-s{seed}.png"


def make_task(
    data: Any, device: torch.device, batch_size: int = 256, lpips_weights: str | None = None
) -> Task:
    """The task of a loaded dataset (its ``task`` declares which), evaluated on
    ``device`` in batches of ``batch_size``; ``lpips_weights`` feed perceptual metrics
    where the task has them."""
    return TASKS.get(data.task)(data, device, batch_size, lpips_weights=lpips_weights)


def per_item_key(key: str, item: str) -> str:
    """The metric ``key`` of one test item (an image): ``<key>@<item>``."""
    return f"{key}@{item}"


def metric_of(key: str) -> str:
    """The metric a (possibly per-item) key records: ``test_psnr_y@camera`` -> ``test_psnr_y``."""
    return key.split("@", 1)[0]
