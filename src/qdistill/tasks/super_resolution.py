"""Super-resolution: pixel loss on random patches; PSNR/SSIM (Y and RGB), HaarPSI, LPIPS
when available and the bicubic baseline (``val_psnr_y`` picks the best epoch)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
from torch import nn

from qdistill.data import Augmentation
from qdistill.data.images import bicubic_resize, detailed_window
from qdistill.data.sr import SRData
from qdistill.distill.losses import pixel_loss
from qdistill.errors import ConfigError
from qdistill.metrics import fidelity, haarpsi, lpips_metric
from qdistill.quant import convert
from qdistill.tasks.base import TASKS, Baseline, Metric, Panel, per_item_key, sample_path
from qdistill.train import TrainConfig
from qdistill.train.loop import LossFn

SAMPLE_CROP = 128  # pixels (HR) of the picture-grid crop
REFERENCE_PICTURES = ("lr", "bicubic", "hr")
BICUBIC = Baseline("bicubic", "interpolation", "bicubic_")


@TASKS.register("super_resolution")
class SuperResolutionTask:
    kind = "super_resolution"
    distill_loss = "pixel_kd"
    monitor = "val_psnr_y"
    headline = Metric("test_psnr_y", "PSNR-Y (dB)")
    integer = Metric("test_psnr_y_integer", "Integer model PSNR-Y")
    quality = (
        headline,
        Metric("test_ssim_y", "SSIM-Y", 4),
        Metric("test_psnr_rgb", "PSNR-RGB (dB)"),
        Metric("test_ssim_rgb", "SSIM-RGB", 4),
        Metric("test_haarpsi", "HaarPSI", 4),
        Metric("test_lpips", "LPIPS", 4),
    )
    console = ("test_psnr_y", "test_ssim_y", "test_haarpsi")
    per_run = (
        Metric("test_ssim_y", "Test SSIM-Y", 4),
        Metric("val_psnr_y", "Val PSNR-Y"),
        Metric("test_psnr_y", "Test PSNR-Y"),
    )
    baselines = (BICUBIC,)
    per_image = (headline, Metric("test_ssim_y", "SSIM-Y", 4))
    metric_keys = frozenset(
        ["val_psnr_y", integer.key, *(m.key for m in quality)]
        + [f"{BICUBIC.prefix}{m.key}" for m in quality]
    )
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

    def training_batches(
        self,
        batch_size: int,
        seed: int,
        augment: Augmentation | None,
        labelled_fraction: float = 1.0,
    ):
        if labelled_fraction < 1:
            raise ConfigError(
                "labelled_fraction withholds class labels; a super-resolution model learns "
                "from its high-resolution images, so remove it"
            )
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
        """Mean metrics over the split's images; ``full`` (the test split) adds the
        perceptual metrics and each image's ``per_image`` metrics."""
        rgb = self.data.channels == "rgb"
        rows = []
        for prediction, target in outputs:
            row = fidelity(prediction, target, self.data.scale, rgb)
            if full:
                row["haarpsi"] = haarpsi(prediction, target)
                if self.lpips.available:
                    row["lpips"] = self.lpips(prediction, target)
            rows.append(row)
        scores = {f"{prefix}_{key}": sum(r[key] for r in rows) / len(rows) for key in rows[0]}
        if full:
            names = [pair.name for pair in self.data.split(prefix)]
            for metric in self.per_image:
                key = metric.key.removeprefix(f"{prefix}_")
                scores |= {
                    per_item_key(metric.key, name): row[key]
                    for name, row in zip(names, rows, strict=True)
                }
        return scores

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
        validation = self.validate(model) if self.data.val else {}  # none: evaluation only
        metrics = {**validation, **self._scores(outputs, "test", full=True)}
        metrics.update({f"{BICUBIC.prefix}{k}": v for k, v in self.bicubic.items()})
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
        return {self.integer.key: scores[self.headline.key]}

    def calibration_batches(self) -> Iterable:
        return self.data.patches(64, torch.Generator().manual_seed(0), augment=False)

    def chance_level(self) -> None:
        """No level: a diverging SR model is caught by its exploding loss."""
        return None

    def cache_disabled_reason(self) -> str | None:
        return "random training patches differ every epoch"

    def sample_inputs(self, count: int) -> torch.Tensor:
        return self.data.sample_inputs(count)

    def notes(self) -> dict[str, str]:
        return {"lpips": self.lpips.reason}

    def prepare_outputs(self, folder: Path) -> None:
        """LR (pixels repeated), bicubic and HR crops of the first test image, matching
        the crops every run saves: the fixed columns of the report's picture grid."""
        lr, hr = self._pairs("test")[0]
        size = tuple(hr.shape[-2:])
        nearest = torch.nn.functional.interpolate(lr, size=size, mode="nearest")
        images = (nearest, bicubic_resize(lr, size), hr)
        for name, image in zip(REFERENCE_PICTURES, images, strict=True):
            save_png(self._sample_crop(image), folder / f"{name}.png")

    def save_sample(self, model: nn.Module, path: Path) -> None:
        """Write the model's output for a crop of the first test image as a PNG."""
        lr, _ = self._pairs("test")[0]
        save_png(self._sample_crop(self.upscale(model, lr)), path)

    @cached_property
    def _sample_window(self) -> tuple[int, int]:
        """(top, left) of the picture-grid crop: the first test image's most detailed."""
        return detailed_window(self._pairs("test")[0][1], SAMPLE_CROP)

    def _sample_crop(self, image: torch.Tensor) -> torch.Tensor:
        top, left = self._sample_window
        return image[..., top : top + SAMPLE_CROP, left : left + SAMPLE_CROP]

    @classmethod
    def describe_data(cls, data: Mapping[str, Any]) -> list[str]:
        images = data.get("images", {})
        return [
            f"Data: **{data.get('name', '?')}**, x{data.get('scale')} super-resolution on "
            f"{str(data.get('channels', '?')).upper()}, training on random "
            f"{data.get('lr_patch')}-pixel LR patches of {len(images.get('train', []))} "
            f"images, validation on {images.get('val')}, test on {images.get('test')}."
        ]

    @classmethod
    def metric_notes(cls, notes: Sequence[Mapping[str, str]], metric_keys: set[str]) -> list[str]:
        reason = next((n["lpips"] for n in notes if n.get("lpips")), None)
        if "test_lpips" in metric_keys:
            lpips = f"LPIPS (AlexNet, lower is better) from {reason}."
        else:
            lpips = f"LPIPS: unavailable ({reason})." if reason else ""
        return [
            "PSNR and SSIM of 8-bit outputs with a border of `scale` pixels cropped, on the Y "
            "channel of YCbCr (BT.601) and, for RGB models, on RGB; HaarPSI (piq; 1 = "
            f"identical) is a training-free perceptual similarity. {lpips} The quantized "
            "model's quality is that of the fake-quantized model; *integer model* is the "
            "same after `convert()`."
        ]

    @classmethod
    def picture_panels(cls, folder: Path, runs: Sequence[tuple[str, int, float]]) -> list[Panel]:
        """LR | bicubic | each run's output | HR, for the crop of the first test image."""
        if not (folder / "hr.png").is_file():
            return []
        panels = [Panel("LR (input)", folder / "lr.png"), Panel("bicubic", folder / "bicubic.png")]
        for name, seed, value in runs:
            path = sample_path(folder, name, seed)
            if path.is_file():
                panels.append(Panel(f"{name}\n{value:.2f} dB", path))
        return [*panels, Panel("HR (ground truth)", folder / "hr.png")]


def save_png(image: torch.Tensor, path: Path) -> None:
    from PIL import Image

    array = (image[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array).save(path)
