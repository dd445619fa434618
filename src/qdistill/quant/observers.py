"""Range observers: the value ranges a quantizer's scale is derived from.

Weights: min/max per channel, or the clipping range that minimises the squared
quantization error ("mse"). Activations: the range of each batch (min/max, a
percentile, or mean |x| for binary codes), folded into a running range that keeps
the extremes ("minmax") or moves towards each batch (an EMA).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from qdistill.quant.kernels import fake_quantize
from qdistill.quant.qmath import SCALE_EPS
from qdistill.quant.spec import QuantizerSpec

# Clipping ratios (of max |w|) searched by the "mse" weight range.
MSE_CLIP_RATIOS = torch.linspace(0.1, 1.0, 19).tolist()
# Percentile ranges are estimated on at most this many evenly strided samples.
PERCENTILE_SAMPLES = 1 << 18


def channels_first(x: torch.Tensor, axis: int | None) -> torch.Tensor:
    """View ``x`` as (channels, rest) (or (1, all) per tensor) for per-channel reductions."""
    if axis is None:
        return x.reshape(1, -1)
    if axis != 0:
        x = x.transpose(0, axis)
    return x.reshape(x.shape[0], -1)


def mse_scale(flat: torch.Tensor, amax: torch.Tensor, q_min: int, q_max: int) -> torch.Tensor:
    """Per-row symmetric scale minimising the squared error of quantizing ``flat``
    (rows = channels), searched over clipping ratios of each row's max |value|."""
    zeros = torch.zeros(flat.shape[0], dtype=torch.int32, device=flat.device)
    best_scale = (amax / q_max).clamp_min(SCALE_EPS)
    best_err = torch.full_like(amax, math.inf)
    for ratio in MSE_CLIP_RATIOS:
        scale = (amax * (ratio / q_max)).clamp_min(SCALE_EPS)
        q = fake_quantize(flat, scale, zeros, q_min, q_max, axis=0)
        err = (q - flat).square_().sum(1)
        better = err < best_err
        best_scale = torch.where(better, scale, best_scale)
        best_err = torch.where(better, err, best_err)
    return best_scale


def percentile_range(x: torch.Tensor, percentile: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The (100 - p)th and pth percentiles of ``x``, on a strided sample of large tensors."""
    flat = x.reshape(-1)
    if flat.numel() > PERCENTILE_SAMPLES:
        flat = flat[:: flat.numel() // PERCENTILE_SAMPLES]
    q = torch.tensor(
        [1.0 - percentile / 100.0, percentile / 100.0], device=x.device, dtype=flat.dtype
    )
    lo, hi = torch.quantile(flat.float(), q.float())
    return lo.reshape(1), hi.reshape(1)


def batch_range(
    x: torch.Tensor, spec: QuantizerSpec, binary: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """(low, high) of one activation batch as ``spec`` measures it (shape (1,) each)."""
    if binary:
        lo = hi = x.abs().mean().reshape(1)
        return lo, hi
    if spec.range == "percentile":
        return percentile_range(x, spec.percentile)
    lo, hi = torch.aminmax(x)
    return lo.reshape(1), hi.reshape(1)


def update_running_range(
    running_min: torch.Tensor,
    running_max: torch.Tensor,
    lo: torch.Tensor,
    hi: torch.Tensor,
    spec: QuantizerSpec,
    first: bool,
) -> None:
    """Fold one batch's range into the running range in place: the first batch sets it;
    then ``minmax`` keeps the extremes and every other range moves towards the batch by
    ``1 - momentum``."""
    if first:
        running_min.copy_(lo)
        running_max.copy_(hi)
    elif spec.range == "minmax":
        torch.minimum(running_min, lo, out=running_min)
        torch.maximum(running_max, hi, out=running_max)
    else:
        weight = 1.0 - spec.momentum
        running_min.lerp_(lo, weight)
        running_max.lerp_(hi, weight)


def running_range_scalar(
    running_min: float, running_max: float, lo: float, hi: float, spec: QuantizerSpec
) -> tuple[float, float]:
    """update_running_range (after the first batch) for a range held as Python numbers:
    the same float32 results. ``lerp_`` rounds ``a + w (b - a)`` once after the
    difference (a fused multiply-add), which double precision reproduces: the product
    of two float32 values is exact in it."""
    if spec.range == "minmax":
        return min(running_min, lo), max(running_max, hi)
    weight = float(np.float32(1.0 - spec.momentum))

    def lerp(start: float, end: float) -> float:
        step = float(np.float32(end) - np.float32(start))
        if weight < 0.5:
            return float(np.float32(start + weight * step))
        return float(np.float32(end - step * float(np.float32(1.0) - np.float32(weight))))

    return lerp(running_min, lo), lerp(running_max, hi)
