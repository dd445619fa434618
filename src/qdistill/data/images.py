"""Image files and resampling for super-resolution: decoding (cached in memory), the
bundled photos, and the one bicubic kernel used to make every LR image."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from qdistill.errors import DatasetError

# 64 megapixels (8k x 8k); DIV2K's images are about 3. Bounds the memory a crafted image
# (a few KB of PNG that decodes to gigabytes) can take.
MAX_IMAGE_PIXELS = 64 * 10**6
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

# Natural photos shipped inside scikit-image (files) and scikit-learn (sample images).
# The split is fixed: test and validation photos are never trained on.
BUNDLED_TRAIN = (
    "astronaut",
    "motorcycle_left",
    "ihc",
    "hubble_deep_field",
    "sklearn:china",
    "coins",
    "moon",
    "brick",
    "grass",
    "gravel",
)
BUNDLED_VAL = ("coffee",)
BUNDLED_TEST = ("chelsea", "rocket", "sklearn:flower", "camera")


def to_rgb_uint8(array: np.ndarray, source: str) -> torch.Tensor:
    """(3, H, W) uint8 from an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array."""
    if array.dtype != np.uint8:
        if np.issubdtype(array.dtype, np.integer) and array.max() > 255:
            array = (array / 257).round()  # 16-bit images
        elif np.issubdtype(array.dtype, np.floating):
            array = np.clip(array, 0, 1) * 255 if array.max() <= 1 else array
        array = np.clip(np.round(array), 0, 255).astype(np.uint8)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise DatasetError(f"{source}: expected a grey, RGB or RGBA image, got {array.shape}")
    if array.shape[2] == 1:
        array = np.repeat(array, 3, axis=2)
    return torch.from_numpy(array[:, :, :3].transpose(2, 0, 1).copy())


@lru_cache(maxsize=4096)
def _decode(path: str, mtime_ns: int, size: int) -> torch.Tensor:
    from PIL import Image, UnidentifiedImageError
    from PIL.Image import DecompressionBombError

    try:
        with Image.open(path) as image:
            if image.width * image.height > MAX_IMAGE_PIXELS:
                raise DatasetError(
                    f"image {path} is {image.width}x{image.height} pixels; qdistill reads "
                    f"images of at most {MAX_IMAGE_PIXELS // 10**6} megapixels, shrink or crop it"
                )
            image.load()
            array = np.asarray(image.convert("RGB") if image.mode in ("P", "CMYK") else image)
    except (UnidentifiedImageError, DecompressionBombError, OSError, ValueError) as err:
        raise DatasetError(f"cannot decode image {path}: {err}") from None
    return to_rgb_uint8(array, path)


def read_image(path: str | Path) -> torch.Tensor:
    """Decode an image file into (3, H, W) uint8, cached in memory by path and mtime
    (decoding is the slow part of an SR epoch; the cache makes it happen once)."""
    path = Path(path)
    try:
        stat = path.stat()
    except OSError:
        raise DatasetError(f"image {path} does not exist") from None
    return _decode(str(path), stat.st_mtime_ns, stat.st_size)


def image_files(folder: str | Path, what: str) -> list[Path]:
    """The image files of a folder, sorted; a clear error when there are none."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise DatasetError(f"{what} folder {folder} does not exist; point the option to it")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetError(
            f"{what} folder {folder} has no images ({', '.join(IMAGE_SUFFIXES)} files)"
        )
    return files


def bundled_photo(name: str) -> torch.Tensor:
    """One bundled photo as (3, H, W) uint8: ``sklearn:<name>`` or a scikit-image file."""
    if name.startswith("sklearn:"):
        from sklearn.datasets import load_sample_image

        return to_rgb_uint8(load_sample_image(f"{name.split(':', 1)[1]}.jpg"), name)
    import skimage

    root = Path(os.path.dirname(skimage.__file__)) / "data"
    matches = sorted(root.glob(f"{name}.*"))
    if not matches:
        raise DatasetError(f"scikit-image does not ship the photo {name!r} (looked in {root})")
    return read_image(matches[0])


def modcrop(image: torch.Tensor, scale: int) -> torch.Tensor:
    """Crop height and width down to multiples of ``scale`` (so LR x scale = HR exactly)."""
    height, width = image.shape[-2:]
    return image[..., : height - height % scale, : width - width % scale]


def center_crop(image: torch.Tensor, size: int) -> torch.Tensor:
    """The central ``size`` x ``size`` crop of an image (smaller sides are kept whole)."""
    height, width = image.shape[-2:]
    top, left = max((height - size) // 2, 0), max((width - size) // 2, 0)
    return image[..., top : top + size, left : left + size]


def detailed_window(image: torch.Tensor, size: int, stride: int = 8) -> tuple[int, int]:
    """(top, left) of the ``size`` x ``size`` window of ``image`` (C, H, W or N, C, H, W,
    float) with the most detail: the largest mean absolute gradient, searched every
    ``stride`` pixels. A centre crop of a photo can be sky; differences between models
    show where there are edges and texture."""
    grey = image.reshape(-1, *image.shape[-2:]).float().mean(0)
    height, width = grey.shape
    if height <= size and width <= size:
        return 0, 0
    detail = torch.zeros_like(grey)
    detail[:, 1:] += (grey[:, 1:] - grey[:, :-1]).abs()
    detail[1:, :] += (grey[1:, :] - grey[:-1, :]).abs()
    window = (min(size, height), min(size, width))
    sums = F.avg_pool2d(detail[None, None], window, stride=stride)[0, 0]
    index = int(sums.argmax())
    return (index // sums.shape[1]) * stride, (index % sums.shape[1]) * stride


def bicubic_resize(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bicubic resampling of float (N, C, H, W) images in [0, 1], antialiased when
    shrinking (like MATLAB's imresize), clamped to [0, 1]."""
    shrinking = size[0] < images.shape[-2]
    out = F.interpolate(images, size=size, mode="bicubic", align_corners=False, antialias=shrinking)
    return out.clamp_(0.0, 1.0)


def downscale_uint8(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """The LR image of a (3, H, W) uint8 HR image (dimensions multiples of ``scale``),
    stored as 8-bit like a real LR file."""
    height, width = hr.shape[-2:]
    lr = bicubic_resize(hr[None].float() / 255.0, (height // scale, width // scale))[0]
    return (lr * 255.0).round_().to(torch.uint8)
