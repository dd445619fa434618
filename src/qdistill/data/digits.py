"""scikit-learn's digits: 1797 real 8x8 handwritten digits, bundled with the package."""

from __future__ import annotations

import numpy as np

from qdistill.data.base import ClassificationData, standardize, stratified_split, to_split
from qdistill.data.registry import DATASETS


@DATASETS.register("digits")
def digits(
    split_seed: int = 0,
    val_fraction: float = 0.15,
    test_fraction: float = 0.2,
    standardize_pixels: bool = True,
):
    """Digits as (1, 8, 8) images, standardised; a fixed stratified train/val/test split.

    ``standardize_pixels: false`` keeps the pixels in [0, 1] (non-negative inputs
    quantize with zero point 0, as FINN needs)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = bunch.images.astype(np.float32) / 16.0
    labels = bunch.target.astype(np.int64)
    train_idx, val_idx, test_idx = stratified_split(
        labels, (val_fraction, test_fraction), split_seed
    )
    splits = images[train_idx], images[val_idx], images[test_idx]
    (train, val, test), norm = standardize(*splits) if standardize_pixels else (splits, {})
    return ClassificationData(
        name="digits",
        train=to_split(train[:, None], labels[train_idx]),
        val=to_split(val[:, None], labels[val_idx]),
        test=to_split(test[:, None], labels[test_idx]),
        num_classes=10,
        info={
            "source": "sklearn.datasets.load_digits",
            "normalisation": norm,
            "split_seed": split_seed,
        },
    )
