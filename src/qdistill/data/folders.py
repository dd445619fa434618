"""Any image classification set on disk, one folder per class.

``root/train/<class>/*.png`` (and optionally ``root/test/<class>/...``), or
``root/<class>/...`` split into train/val/test by a seeded stratified split. Images are
decoded with the same bounded reader as super-resolution data (64 megapixels at most),
resized to ``size`` x ``size`` (antialiased bilinear), kept RGB or made grey, and
normalised per channel by the training split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from qdistill.data.base import (
    ClassificationData,
    standardize_channels,
    stratified_split,
    to_split,
)
from qdistill.data.images import image_files, read_image
from qdistill.data.registry import DATASETS
from qdistill.errors import DatasetError


def _class_folders(folder: Path) -> list[str]:
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise DatasetError(
            f"{folder} needs one folder per class (at least two), found {classes or 'none'}"
        )
    return classes


def _read(folder: Path, classes: list[str], size: int, grey: bool) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for label, name in enumerate(classes):
        if not (folder / name).is_dir():
            continue
        for path in image_files(folder / name, f"class {name!r}"):
            image = read_image(path).float()[None] / 255.0
            image = F.interpolate(image, size=(size, size), mode="bilinear", antialias=True)
            images.append(image.mean(1, keepdim=True) if grey else image)
            labels.append(label)
    return torch.cat(images).clamp_(0, 1).numpy(), np.asarray(labels, dtype=np.int64)


@DATASETS.register("image_folder")
def image_folder(
    root: str | None = None,
    size: int = 32,
    channels: Literal["rgb", "grey"] = "rgb",
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    split_seed: int = 0,
) -> ClassificationData:
    """Images in class folders (``root/train/<class>``, optional ``root/test/<class>``,
    or ``root/<class>`` split by ``test_fraction``), resized to ``size`` x ``size``."""
    if root is None:
        raise DatasetError("image_folder needs 'root': the folder holding one folder per class")
    base = Path(root).expanduser()
    if not base.is_dir():
        raise DatasetError(f"image folder {base} does not exist; point 'root' at it")
    if not 4 <= size <= 1024:
        raise DatasetError(f"size must be between 4 and 1024 pixels, got {size}")
    if channels not in ("rgb", "grey"):
        raise DatasetError(f"channels must be 'rgb' or 'grey', got {channels!r}")
    train_folder = base / "train" if (base / "train").is_dir() else base
    classes = _class_folders(train_folder)
    images, labels = _read(train_folder, classes, size, channels == "grey")
    if (base / "test").is_dir():
        unknown = sorted(set(_class_folders(base / "test")) - set(classes))
        if unknown:
            raise DatasetError(f"test classes {unknown} have no training folder in {train_folder}")
        test_images, test_labels = _read(base / "test", classes, size, channels == "grey")
        # the held-out part of a (val 0, test val_fraction) split is the validation set
        train_idx, _, val_idx = stratified_split(labels, (0.0, val_fraction), split_seed)
    else:
        train_idx, val_idx, test_idx = stratified_split(
            labels, (val_fraction, test_fraction), split_seed
        )
        test_images, test_labels = images[test_idx], labels[test_idx]
    (train, val, test), norm = standardize_channels(images[train_idx], images[val_idx], test_images)
    return ClassificationData(
        name="image_folder",
        train=to_split(train, labels[train_idx]),
        val=to_split(val, labels[val_idx]),
        test=to_split(test, test_labels),
        num_classes=len(classes),
        info={"source": str(base), "classes": classes, "normalisation": norm, "size": size},
    )
