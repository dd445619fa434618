"""MNIST and Fashion-MNIST from the standard IDX files in a directory the user gives.

Looks for ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each optionally
``.gz``) in the directory itself or in torchvision's ``<root>/<Name>/raw`` layout.
Nothing is downloaded.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from qdistill.data.base import ClassificationData, standardize, to_split
from qdistill.data.registry import DATASETS
from qdistill.errors import DatasetError

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
MAX_IDX_BYTES = 2**31  # 2 GiB; the MNIST training images are 47 MB
# IDX type codes -> numpy dtypes (big-endian, as the format stores them).
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (optionally gzip-compressed) into a numpy array. The header is
    checked first: no more than it announces (and at most MAX_IDX_BYTES) is read, so a
    crafted file cannot make the reader decompress or allocate without bound."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            magic = handle.read(4)
            if len(magic) < 4 or magic[:2] != b"\0\0" or magic[2] not in _IDX_DTYPES:
                raise DatasetError(f"{path} is not an IDX file (bad magic number)")
            dims = handle.read(4 * magic[3])
            shape = tuple(int.from_bytes(dims[i : i + 4], "big") for i in range(0, len(dims), 4))
            dtype = np.dtype(_IDX_DTYPES[magic[2]])
            expected = int(np.prod(shape, dtype=object)) * dtype.itemsize
            if len(dims) < 4 * magic[3] or expected > MAX_IDX_BYTES:
                raise DatasetError(
                    f"{path}: header announces {shape} ({expected} bytes); qdistill reads IDX "
                    f"files of at most {MAX_IDX_BYTES} bytes"
                )
            data = handle.read(expected + 1)
    except (OSError, EOFError, zlib.error) as err:
        raise DatasetError(
            f"cannot read IDX file {path} ({err}); it is truncated or corrupt, download it again"
        ) from None
    if len(data) != expected:
        raise DatasetError(
            f"{path} is truncated or corrupt: header says {shape} ({expected} bytes), "
            f"file holds {'more' if len(data) > expected else len(data)} bytes of data"
        )
    return np.frombuffer(data, dtype=dtype).reshape(shape)


def _find_files(root: Path, display_name: str, folder_name: str) -> dict[str, Path]:
    if not root.is_dir():
        raise DatasetError(
            f"{display_name} directory {root} does not exist; point 'root' at the folder "
            f"holding {', '.join(IDX_FILES.values())} (optionally .gz)"
        )
    found: dict[str, Path] = {}
    for directory in (root, root / folder_name / "raw"):
        for key, stem in IDX_FILES.items():
            for candidate in (directory / stem, directory / f"{stem}.gz"):
                if key not in found and candidate.is_file():
                    found[key] = candidate
    missing = [IDX_FILES[k] for k in IDX_FILES if k not in found]
    if missing:
        raise DatasetError(
            f"{display_name} files missing in {root}: {', '.join(missing)} (optionally .gz); "
            "download the four standard IDX files there first"
        )
    return found


def _load_idx_dataset(
    name: str, folder_name: str, root: str | None, val_fraction: float, split_seed: int
) -> ClassificationData:
    if root is None:
        raise DatasetError(f"dataset {name!r} needs 'root': the directory holding its IDX files")
    files = _find_files(Path(root).expanduser(), name, folder_name)
    arrays = {key: read_idx(path) for key, path in files.items()}
    for part in ("train", "test"):
        images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise DatasetError(
                f"{name} {part} files disagree: images {images.shape}, labels {labels.shape}"
            )
    if not 0.0 < val_fraction < 1.0:
        raise DatasetError(f"val_fraction must be in (0, 1), got {val_fraction}")
    train_images = arrays["train_images"].astype(np.float32) / 255.0
    train_labels = arrays["train_labels"].astype(np.int64)
    order = np.random.default_rng(split_seed).permutation(len(train_images))
    n_val = max(1, round(len(order) * val_fraction))
    val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
    test_images = arrays["test_images"].astype(np.float32) / 255.0
    (train, val, test), norm = standardize(
        train_images[train_idx], train_images[val_idx], test_images
    )
    return ClassificationData(
        name=name,
        train=to_split(train[:, None], train_labels[train_idx]),
        val=to_split(val[:, None], train_labels[val_idx]),
        test=to_split(test[:, None], arrays["test_labels"].astype(np.int64)),
        num_classes=10,
        info={"source": str(root), "normalisation": norm, "split_seed": split_seed},
    )


@DATASETS.register("mnist")
def mnist(root: str | None = None, val_fraction: float = 1 / 12, split_seed: int = 0):
    """MNIST from local IDX files; the last-twelfth validation split is seeded."""
    return _load_idx_dataset("mnist", "MNIST", root, val_fraction, split_seed)


@DATASETS.register("fashion_mnist")
def fashion_mnist(root: str | None = None, val_fraction: float = 1 / 12, split_seed: int = 0):
    """Fashion-MNIST from local IDX files (same file names as MNIST)."""
    return _load_idx_dataset("fashion_mnist", "FashionMNIST", root, val_fraction, split_seed)
