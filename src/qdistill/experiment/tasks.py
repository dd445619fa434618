"""What differs between task families, behind one interface the runner and commands use:
training batches and loss, per-epoch validation, test metrics, calibration inputs.

- classification: cross-entropy, accuracy (``val_acc`` picks the best epoch);
- super-resolution: pixel loss on random patches, PSNR/SSIM (RGB and Y), HaarPSI and
  LPIPS when available, the bicubic baseline (``val_psnr_y`` picks the best epoch).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import nn

from qdistill.data import Augmentation, Batches, ClassificationData
from qdistill.data.images import bicubic_resize, center_crop
from qdistill.data.sr import SRData
from qdistill.distill.losses import pixel_loss
from qdistill.experiment.steps import evaluate_splits, training_batches
from qdistill.metrics import evaluate_classifier, fidelity, haarpsi, lpips_metric
from qdistill.quant import convert
from qdistill.train import TrainConfig
from qdistill.train.loop import LossFn, classification_loss


class ClassificationTask:
    kind = "classification"
    distill_loss = "kd_kl"
    monitor = "val_acc"
    headline = "test_acc"
    unit = "%"

    def __init__(self, data: ClassificationData, device: torch.device, batch_size: int = 256):
        self.data, self.device, self.batch_size = data, device, batch_size

    @property
    def num_outputs(self) -> int:
        return self.data.num_classes

    def training_batches(self, batch_size: int, seed: int, augment: Augmentation | None):
        return training_batches(self.data, batch_size, seed, augment)

    def loss_fn(self, train: TrainConfig) -> LossFn:
        return classification_loss

    def validate(self, model: nn.Module) -> dict[str, float]:
        return evaluate_splits(model, self.data, self.device, self.batch_size, ("val",))

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        return evaluate_splits(model, self.data, self.device, self.batch_size)

    def integer_metrics(self, model: nn.Module) -> dict[str, float]:
        batches = Batches(self.data.test, self.batch_size)
        return {
            "test_acc_integer": evaluate_classifier(convert(model), batches, self.device)["acc"]
        }

    def calibration_batches(self) -> Iterable:
        return Batches(self.data.train, self.batch_size)

    def cache_disabled_reason(self) -> str | None:
        return None

    def sample_inputs(self, count: int) -> torch.Tensor:
        return self.data.sample_inputs(count)

    def record_fields(self) -> dict[str, Any]:
        return {}

    def prepare_outputs(self, folder: Path) -> None:
        """Classifiers produce no pictures."""

    def save_sample(self, model: nn.Module, path: Path) -> None:
        """Classifiers produce no pictures."""


class SuperResolutionTask:
    kind = "super_resolution"
    distill_loss = "pixel_kd"
    monitor = "val_psnr_y"
    headline = "test_psnr_y"
    unit = " dB"

    def __init__(
        self,
        data: SRData,
        device: torch.device,
        batch_size: int = 256,
        lpips_weights: str | None = None,
    ) -> None:
        self.data, self.device, self.batch_size = data, device, batch_size
        self.lpips = lpips_metric(lpips_weights)
        self._split_tensors: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {}

    @property
    def num_outputs(self) -> int:
        return self.data.num_outputs

    def training_batches(self, batch_size: int, seed: int, augment: Augmentation | None):
        return self.data.patches(batch_size, torch.Generator().manual_seed(seed))

    def loss_fn(self, train: TrainConfig) -> LossFn:
        kind = train.pixel_loss

        def loss(model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
            return pixel_loss(model(batch[0]), batch[1], kind)

        return loss

    @torch.no_grad()
    def upscale(self, model: nn.Module, lr: torch.Tensor) -> torch.Tensor:
        """The model's output for one LR image (eval mode; the mode is restored)."""
        was_training = model.training
        model.eval()
        try:
            return model(lr.to(self.device)).cpu()
        finally:
            model.train(was_training)

    def _scores(self, outputs: Iterable[tuple[torch.Tensor, torch.Tensor]], prefix: str, full):
        rgb = self.data.channels == "rgb"
        rows = []
        for prediction, target in outputs:
            row = fidelity(prediction, target, self.data.scale, rgb)
            if full:
                row["haarpsi"] = haarpsi(prediction, target)
                if self.lpips.available:
                    row["lpips"] = self.lpips(prediction, target)
            rows.append(row)
        return {f"{prefix}_{key}": sum(r[key] for r in rows) / len(rows) for key in rows[0]}

    def _pairs(self, split: str) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(LR, HR) float tensors of a split, converted once (validation runs every epoch)."""
        if split not in self._split_tensors:
            pairs = self.data.split(split)
            self._split_tensors[split] = [p.tensors(self.data.channels) for p in pairs]
        return self._split_tensors[split]

    def validate(self, model: nn.Module) -> dict[str, float]:
        outputs = ((self.upscale(model, lr), hr) for lr, hr in self._pairs("val"))
        scores = self._scores(outputs, "val", full=False)
        return {"val_psnr_y": scores["val_psnr_y"]}

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        outputs = [(self.upscale(model, lr), hr) for lr, hr in self._pairs("test")]
        metrics = {**self.validate(model), **self._scores(outputs, "test", full=True)}
        metrics.update({f"bicubic_{k}": v for k, v in self.bicubic.items()})
        return metrics

    @cached_property
    def bicubic(self) -> dict[str, float]:
        """The bicubic-upscaling baseline on the test images."""
        outputs = ((bicubic_resize(lr, tuple(hr.shape[-2:])), hr) for lr, hr in self._pairs("test"))
        return self._scores(outputs, "test", full=True)

    def integer_metrics(self, model: nn.Module) -> dict[str, float]:
        integer = convert(model)
        outputs = ((self.upscale(integer, lr), hr) for lr, hr in self._pairs("test"))
        scores = self._scores(outputs, "test", full=False)
        return {"test_psnr_y_integer": scores["test_psnr_y"]}

    def calibration_batches(self) -> Iterable:
        return self.data.patches(64, torch.Generator().manual_seed(0), augment=False)

    def cache_disabled_reason(self) -> str | None:
        return "random training patches differ every epoch"

    def sample_inputs(self, count: int) -> torch.Tensor:
        return self.data.sample_inputs(count)

    def record_fields(self) -> dict[str, Any]:
        return {"lpips": self.lpips.reason}

    def prepare_outputs(self, folder: Path) -> None:
        """LR (pixels repeated), bicubic and HR crops of the first test image, matching
        the crops every run saves: the fixed columns of the report's picture grid."""
        lr, hr = self._pairs("test")[0]
        size = tuple(hr.shape[-2:])
        nearest = torch.nn.functional.interpolate(lr, size=size, mode="nearest")
        for name, image in (("lr", nearest), ("bicubic", bicubic_resize(lr, size)), ("hr", hr)):
            save_png(center_crop(image, SAMPLE_CROP), folder / f"{name}.png")

    def save_sample(self, model: nn.Module, path: Path) -> None:
        """Write the model's output for a crop of the first test image as a PNG."""
        lr, _ = self._pairs("test")[0]
        save_png(center_crop(self.upscale(model, lr), SAMPLE_CROP), path)


SAMPLE_CROP = 128  # pixels (HR) of the picture-grid crop


def save_png(image: torch.Tensor, path: Path) -> None:
    from PIL import Image

    array = (image[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array).save(path)


Task = ClassificationTask | SuperResolutionTask


def make_task(
    data: Any, device: torch.device, batch_size: int = 256, lpips_weights: str | None = None
) -> Task:
    if isinstance(data, SRData):
        return SuperResolutionTask(data, device, batch_size, lpips_weights)
    return ClassificationTask(data, device, batch_size)
