"""CIFAR-10 and CIFAR-100 from the binary versions in a directory the user gives.

CIFAR-10 (``cifar-10-binary.tar.gz``, unpacked to ``cifar-10-batches-bin``):
``data_batch_1.bin`` .. ``data_batch_5.bin`` and ``test_batch.bin``, each record one
label byte and 3072 pixel bytes (1024 red, 1024 green, 1024 blue, row-major 32x32).
CIFAR-100 (``cifar-100-binary.tar.gz``, ``cifar-100-binary``): ``train.bin`` and
``test.bin``, each record a coarse label byte, a fine label byte and the same pixels.
The Python versions are pickles, which qdistill never unpickles: pointing at one is an
error that names the binary archive to get instead. Nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np

from qdistill.data.base import ClassificationData, standardize_channels, to_split
from qdistill.data.registry import DATASETS
from qdistill.errors import DatasetError

PIXELS = 3 * 32 * 32
MAX_FILE_BYTES = 256 << 20  # the largest CIFAR file (CIFAR-100 train.bin) is 154 MB
CIFAR10_FILES = {
    "train": [f"data_batch_{i}.bin" for i in range(1, 6)],
    "test": ["test_batch.bin"],
}
CIFAR100_FILES = {"train": ["train.bin"], "test": ["test.bin"]}
PYTHON_VERSION_MARKERS = ("data_batch_1", "test_batch", "train", "test", "meta", "batches.meta")


def _folder(root: str | None, name: str, subfolder: str, files: dict[str, list[str]]) -> Path:
    if root is None:
        raise DatasetError(f"dataset {name!r} needs 'root': the folder holding its binary files")
    base = Path(root).expanduser()
    if not base.is_dir():
        raise DatasetError(f"{name} directory {base} does not exist; point 'root' at it")
    for folder in (base, base / subfolder):
        if all((folder / f).is_file() for part in files.values() for f in part):
            return folder
    for folder in (base, base / subfolder.replace("-bin", "-py").replace("binary", "python")):
        if any((folder / marker).is_file() for marker in PYTHON_VERSION_MARKERS):
            raise DatasetError(
                f"{folder} holds the Python (pickle) version of {name}, which qdistill never "
                f"unpickles; download the binary version ({subfolder.split('-b')[0]}-binary"
                ".tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html) and point 'root' "
                "at it"
            )
    wanted = ", ".join(f for part in files.values() for f in part)
    raise DatasetError(f"{name} files missing in {base} (or {base / subfolder}): need {wanted}")


def read_records(path: Path, label_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 3, 32, 32) uint8, labels (N, label_bytes) uint8) from one binary file."""
    record = label_bytes + PIXELS
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise DatasetError(f"{path} is larger than any CIFAR batch file; is it one?")
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as err:
        raise DatasetError(f"cannot read {path}: {err}") from None
    if data.size == 0 or data.size % record:
        raise DatasetError(
            f"{path} is truncated or not a CIFAR binary file: {data.size} bytes is not a "
            f"whole number of {record}-byte records"
        )
    records = data.reshape(-1, record)
    return records[:, label_bytes:].reshape(-1, 3, 32, 32), records[:, :label_bytes]


def _load(
    name: str,
    folder: Path,
    files: dict[str, list[str]],
    label_bytes: int,
    label_column: int,
    classes: int,
    val_fraction: float,
    split_seed: int,
) -> ClassificationData:
    if not 0.0 < val_fraction < 1.0:
        raise DatasetError(f"val_fraction must be in (0, 1), got {val_fraction}")
    parts = {}
    for part, names in files.items():
        read = [read_records(folder / n, label_bytes) for n in names]
        images = np.concatenate([r[0] for r in read])
        labels = np.concatenate([r[1] for r in read])[:, label_column].astype(np.int64)
        parts[part] = (images.astype(np.float32) / 255.0, labels)
    train_images, train_labels = parts["train"]
    order = np.random.default_rng(split_seed).permutation(len(train_images))
    n_val = max(1, round(len(order) * val_fraction))
    val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
    (train, val, test), norm = standardize_channels(
        train_images[train_idx], train_images[val_idx], parts["test"][0]
    )
    return ClassificationData(
        name=name,
        train=to_split(train, train_labels[train_idx]),
        val=to_split(val, train_labels[val_idx]),
        test=to_split(test, parts["test"][1]),
        num_classes=classes,
        info={"source": str(folder), "normalisation": norm, "split_seed": split_seed},
    )


@DATASETS.register("cifar10")
def cifar10(root: str | None = None, val_fraction: float = 0.1, split_seed: int = 0):
    """CIFAR-10 from the binary version (cifar-10-batches-bin); a seeded 10% of the
    training images is held out for validation."""
    folder = _folder(root, "cifar10", "cifar-10-batches-bin", CIFAR10_FILES)
    return _load("cifar10", folder, CIFAR10_FILES, 1, 0, 10, val_fraction, split_seed)


@DATASETS.register("cifar100")
def cifar100(
    root: str | None = None,
    labels: Literal["fine", "coarse"] = "fine",
    val_fraction: float = 0.1,
    split_seed: int = 0,
):
    """CIFAR-100 from the binary version (cifar-100-binary): 100 fine or 20 coarse
    classes; a seeded 10% of the training images is held out for validation."""
    if labels not in ("fine", "coarse"):
        raise DatasetError(f"labels must be 'fine' or 'coarse', got {labels!r}")
    folder = _folder(root, "cifar100", "cifar-100-binary", CIFAR100_FILES)
    column, classes = (1, 100) if labels == "fine" else (0, 20)
    return _load("cifar100", folder, CIFAR100_FILES, 2, column, classes, val_fraction, split_seed)
