"""Super-resolution data: HR/LR image pairs held in memory and random training patches.

LR images are made from HR images with one antialiased bicubic kernel (the same for
training and test), or read from an LR folder when the dataset provides one. Images
stay uint8 in memory; patches are cut, flipped and rotated per batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch

from qdistill.data.images import (
    BUNDLED_TEST,
    BUNDLED_TRAIN,
    BUNDLED_VAL,
    bundled_photo,
    center_crop,
    downscale_uint8,
    image_files,
    modcrop,
    read_image,
)
from qdistill.data.registry import DATASETS
from qdistill.errors import DatasetError
from qdistill.metrics.image import rgb_to_y

Channels = Literal["rgb", "y"]


@dataclass(frozen=True)
class ImagePair:
    """One HR image and its LR version, (3, H, W) uint8 each, HR = LR x scale exactly."""

    name: str
    hr: torch.Tensor
    lr: torch.Tensor

    def tensors(self, channels: Channels) -> tuple[torch.Tensor, torch.Tensor]:
        """(LR, HR) as float (1, C, H, W) in [0, 1]: RGB, or the Y channel of YCbCr."""
        return to_model_space(self.lr[None], channels), to_model_space(self.hr[None], channels)


def to_model_space(images: torch.Tensor, channels: Channels) -> torch.Tensor:
    """uint8 RGB (N, 3, H, W) -> float (N, C, H, W) in [0, 1] (C = 3, or 1 for Y)."""
    rgb = images.float() / 255.0
    return rgb_to_y(rgb) if channels == "y" else rgb


def make_pair(name: str, hr: torch.Tensor, scale: int, lr: torch.Tensor | None = None):
    if min(hr.shape[-2:]) < scale:
        raise DatasetError(
            f"image {name} is {tuple(hr.shape[-2:])} pixels, smaller than the scale {scale}; "
            "remove it from the folder"
        )
    hr = modcrop(hr, scale)
    if lr is None:
        lr = downscale_uint8(hr, scale)
    elif tuple(lr.shape[-2:]) != (hr.shape[-2] // scale, hr.shape[-1] // scale):
        raise DatasetError(
            f"LR image of {name} is {tuple(lr.shape[-2:])}, expected the HR size "
            f"{tuple(hr.shape[-2:])} divided by the scale {scale}"
        )
    return ImagePair(name, hr, lr)


@dataclass
class SRData:
    """Training images (patches are sampled from them), validation and test images."""

    task: ClassVar[str] = "super_resolution"
    name: str
    scale: int
    channels: Channels
    train: list[ImagePair]
    val: list[ImagePair]
    test: list[ImagePair]
    lr_patch: int = 32
    patches_per_epoch: int = 2048
    info: dict[str, Any] = field(default_factory=dict)
    evaluation_only: bool = False  # no train and val images: it only tests a model

    def __post_init__(self) -> None:
        if self.scale not in (2, 3, 4):
            raise DatasetError(f"scale must be 2, 3 or 4, got {self.scale}")
        if self.channels not in ("rgb", "y"):
            raise DatasetError(f"channels must be 'rgb' or 'y', got {self.channels!r}")
        if self.lr_patch < 4 or self.patches_per_epoch < 1:
            raise DatasetError("lr_patch must be >= 4 and patches_per_epoch >= 1")
        small = [p.name for p in self.train if min(p.lr.shape[-2:]) < self.lr_patch]
        if small:
            raise DatasetError(
                f"training images {small} are smaller than lr_patch={self.lr_patch} LR pixels; "
                "lower lr_patch"
            )

    @property
    def num_channels(self) -> int:
        return 3 if self.channels == "rgb" else 1

    @property
    def num_outputs(self) -> int:
        return self.num_channels

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The shape of one training input (an LR patch)."""
        return (self.num_channels, self.lr_patch, self.lr_patch)

    def split(self, name: str) -> list[ImagePair]:
        if name not in ("train", "val", "test"):
            raise ValueError(f"split must be train, val or test, not {name!r}")
        return getattr(self, name)

    def patches(
        self, batch_size: int, generator: torch.Generator | None = None, augment: bool = True
    ) -> PatchBatches:
        if not self.train:
            raise DatasetError(
                f"dataset {self.name} has no training images (it was read for evaluation); "
                "give the option 'train' (an HR image folder) to train or calibrate"
            )
        return PatchBatches(self, batch_size, generator, augment)

    def sample_inputs(self, count: int) -> torch.Tensor:
        """``count`` LR crops of input_shape from the test images (for exports, benchmarks):
        the images in turn, each crop at a different position."""
        size = self.lr_patch
        images = [
            to_model_space(p.lr[None], self.channels)[0]
            for p in self.test
            if min(p.lr.shape[-2:]) >= size
        ]
        if not images:
            raise DatasetError(f"test images are smaller than lr_patch={size}")
        crops = []
        for k in range(count):
            lr = images[k % len(images)]
            height, width = lr.shape[-2:]
            top = (k * 7 * size) % max(height - size, 1)
            left = (k * 11 * size) % max(width - size, 1)
            crops.append(lr[:, top : top + size, left : left + size])
        return torch.stack(crops)

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "task": self.task,
            "scale": self.scale,
            "channels": self.channels,
            "lr_patch": self.lr_patch,
            "patches_per_epoch": self.patches_per_epoch,
            "images": {s: [p.name for p in self.split(s)] for s in ("train", "val", "test")},
            **self.info,
        }


class PatchBatches:
    """``patches_per_epoch // batch_size`` batches of aligned (LR, HR) patches per pass.

    Patches come from images chosen in proportion to their area, at random positions,
    with random flips and 90-degree rotations (``augment``); a seeded generator makes
    the sequence reproducible.
    """

    def __init__(
        self,
        data: SRData,
        batch_size: int,
        generator: torch.Generator | None = None,
        augment: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch size must be positive, got {batch_size}")
        self.data = data
        self.batch_size = batch_size
        self.generator = generator
        self.augment = augment
        areas = torch.tensor([float(p.lr.shape[-2] * p.lr.shape[-1]) for p in data.train])
        self._weights = areas / areas.sum()

    def __len__(self) -> int:
        return max(self.data.patches_per_epoch // self.batch_size, 1)

    def _patch(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        pair = self.data.train[index]
        size, scale, gen = self.data.lr_patch, self.data.scale, self.generator
        height, width = pair.lr.shape[-2:]
        top = int(torch.randint(0, height - size + 1, (1,), generator=gen))
        left = int(torch.randint(0, width - size + 1, (1,), generator=gen))
        lr = pair.lr[:, top : top + size, left : left + size]
        hr = pair.hr[:, top * scale : (top + size) * scale, left * scale : (left + size) * scale]
        if self.augment:
            flip = torch.randint(0, 2, (1,), generator=gen)
            turns = int(torch.randint(0, 4, (1,), generator=gen))
            if int(flip):
                lr, hr = lr.flip(-1), hr.flip(-1)
            if turns:
                lr, hr = lr.rot90(turns, (-2, -1)), hr.rot90(turns, (-2, -1))
        return lr, hr

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for _ in range(len(self)):
            chosen = torch.multinomial(
                self._weights, self.batch_size, replacement=True, generator=self.generator
            )
            lrs, hrs = zip(*(self._patch(int(i)) for i in chosen), strict=True)
            channels = self.data.channels
            yield (
                to_model_space(torch.stack(lrs), channels),
                to_model_space(torch.stack(hrs), channels),
            )


def _bundled(names: Sequence[str], scale: int, crop: int | None = None) -> list[ImagePair]:
    photos = ((name, bundled_photo(name)) for name in names)
    return [make_pair(n, center_crop(p, crop) if crop else p, scale) for n, p in photos]


@DATASETS.register("photos")
def photos(
    scale: int = 2,
    channels: Channels = "rgb",
    lr_patch: int = 32,
    patches_per_epoch: int = 2048,
    eval_crop: int | None = None,
) -> SRData:
    """The bundled default for super-resolution: natural photos shipped with scikit-image
    and scikit-learn, split once into 10 training, 1 validation and 4 test photos.

    ``eval_crop`` (HR pixels) evaluates on the central crop of each validation and test
    photo instead of the whole photo: quicker, and not comparable with full-photo runs."""
    if eval_crop is not None and eval_crop < 2 * scale:
        raise DatasetError(f"eval_crop {eval_crop} is too small; give at least {2 * scale}")
    return SRData(
        name="photos",
        scale=scale,
        channels=channels,
        train=_bundled(BUNDLED_TRAIN, scale),
        val=_bundled(BUNDLED_VAL, scale, eval_crop),
        test=_bundled(BUNDLED_TEST, scale, eval_crop),
        lr_patch=lr_patch,
        patches_per_epoch=patches_per_epoch,
        info={
            "source": "scikit-image and scikit-learn sample photos",
            "lr": "bicubic",
            "eval_crop": eval_crop,
        },
    )


def _lr_for(hr_path: Path, lr_folder: Path | None, scale: int) -> torch.Tensor | None:
    """The LR file of an HR file: same stem, or DIV2K's ``<stem>x<scale>``."""
    if lr_folder is None:
        return None
    for stem in (hr_path.stem, f"{hr_path.stem}x{scale}"):
        for candidate in sorted(lr_folder.glob(f"{stem}.*")):
            return read_image(candidate)
    raise DatasetError(
        f"no LR image for {hr_path.name} in {lr_folder} (expected {hr_path.stem}.* or "
        f"{hr_path.stem}x{scale}.*)"
    )


def folder_pairs(
    hr_folder: str | Path, lr_folder: str | Path | None, scale: int, what: str
) -> list[ImagePair]:
    """Pairs from an HR image folder, with LR images from ``lr_folder`` or made bicubically."""
    lr_dir = None
    if lr_folder is not None:
        lr_dir = Path(lr_folder).expanduser()
        image_files(lr_dir, f"{what} LR")  # exists and is not empty
    return [
        make_pair(path.stem, read_image(path), scale, _lr_for(path, lr_dir, scale))
        for path in image_files(hr_folder, what)
    ]


@DATASETS.register("sr_folder")
def sr_folder(
    train: str | None = None,
    test: str | None = None,
    val: str | None = None,
    train_lr: str | None = None,
    test_lr: str | None = None,
    scale: int = 2,
    channels: Channels = "rgb",
    lr_patch: int = 32,
    patches_per_epoch: int = 2048,
    val_images: int = 1,
) -> SRData:
    """Image folders on disk: a DIV2K-style HR ``train`` folder (optional ``train_lr``,
    e.g. DIV2K_train_LR_bicubic/X2), and a ``test`` folder such as Set5, Set14, BSD100 or
    Urban100 (optional ``test_lr``). Without ``val`` the last ``val_images`` training
    images are held out for validation. Without ``train`` the dataset only evaluates
    (``qdistill evaluate`` of a trained model on any folder, at any image size)."""
    if test is None:
        raise DatasetError("sr_folder needs option 'test' (an image folder), and 'train' to train")
    train_pairs = folder_pairs(train, train_lr, scale, "train") if train is not None else []
    if val is not None:
        val_pairs = folder_pairs(val, None, scale, "val")
    elif train is None:
        val_pairs = []
    else:
        if len(train_pairs) <= val_images:
            raise DatasetError(
                f"train folder {train} has {len(train_pairs)} image(s); need more than "
                f"val_images={val_images}, or give a 'val' folder"
            )
        train_pairs, val_pairs = train_pairs[:-val_images], train_pairs[-val_images:]
    return SRData(
        name=f"sr_folder:{Path(test).name}",
        scale=scale,
        channels=channels,
        train=train_pairs,
        val=val_pairs,
        test=folder_pairs(test, test_lr, scale, "test"),
        lr_patch=lr_patch,
        patches_per_epoch=patches_per_epoch,
        evaluation_only=train is None and val is None,
        info={
            "train": str(train) if train is not None else "none (evaluation only)",
            "test": str(test),
            "lr": "folder" if train_lr else "bicubic",
        },
    )


for _factory in (photos, sr_folder):
    _factory.task = SRData.task  # lets configs be checked against models before loading data
