"""Uniform affine quantization arithmetic, as pure tensor functions.

    q = clip(round(x / s) + z, q_min, q_max)        x_hat = s * (q - z)

The rounding is computed as ``round(x * (1 / s))`` with a float32 reciprocal and
round-half-to-even, exactly as PyTorch's fused fake-quantize kernels do, so the
integer codes produced here are bit-identical to what fake quantization used.
1-bit signed symmetric quantization is *binary*: codes are {-1, +1} and
x_hat = s * sign(x) with sign(0) = +1.
"""

from __future__ import annotations

import numpy as np
import torch

# Smallest scale we allow: keeps 1/s finite for all-zero tensors or channels.
SCALE_EPS = 1e-8


def integer_range(bits: int, signed: bool, narrow_range: bool = False) -> tuple[int, int]:
    """(q_min, q_max) of a ``bits``-wide integer; narrow range drops the most negative code."""
    if signed:
        if bits == 1:
            return -1, 1  # binary codes {-1, +1}; 0 never occurs
        q_min, q_max = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        return (q_min + 1 if narrow_range else q_min), q_max
    return 0, 2**bits - 1


def power_of_two(scale: torch.Tensor, up: bool = True) -> torch.Tensor:
    """``scale`` snapped to a power of two: the next one up (never clips more) or the
    nearest in the log domain."""
    exponent = torch.log2(scale.clamp_min(SCALE_EPS))
    return torch.pow(2.0, torch.ceil(exponent) if up else torch.round(exponent))


def qparams_from_range(
    min_val: torch.Tensor,
    max_val: torch.Tensor,
    q_min: int,
    q_max: int,
    symmetric: bool,
    pow2: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and zero point covering [min_val, max_val] (widened to include 0).

    Zero is always exactly representable, so zero padding and ReLU zeros stay exact.
    Symmetric: s = max(|min|, |max|) / q_max, z = 0. Asymmetric: s = (max - min) /
    (q_max - q_min), z = clip(q_min - round(min / s)). With ``pow2`` the scale is
    rounded up to a power of two (fixed-point hardware) before the zero point is set.
    """
    min_val = torch.clamp(min_val, max=0.0)
    max_val = torch.clamp(max_val, min=0.0)
    if symmetric:
        scale = torch.maximum(-min_val, max_val) / q_max
        scale = torch.clamp(scale, min=SCALE_EPS)
        scale = power_of_two(scale) if pow2 else scale
        return scale, torch.zeros_like(scale, dtype=torch.int32)
    scale = torch.clamp((max_val - min_val) / (q_max - q_min), min=SCALE_EPS)
    scale = power_of_two(scale) if pow2 else scale
    zero_point = torch.clamp(q_min - torch.round(min_val / scale), q_min, q_max)
    return scale, zero_point.to(torch.int32)


def scalar_qparams_from_range(
    min_val: float, max_val: float, q_min: int, q_max: int, symmetric: bool
) -> tuple[float, int]:
    """qparams_from_range (without ``pow2``) for one range given as Python numbers, in
    the same float32 arithmetic: equal results, without a dozen one-element tensor ops."""
    min_val = min(np.float32(min_val), np.float32(0.0))
    max_val = max(np.float32(max_val), np.float32(0.0))
    eps = np.float32(SCALE_EPS)
    if symmetric:
        return float(max(max(-min_val, max_val) / np.float32(q_max), eps)), 0
    scale = max((max_val - min_val) / np.float32(q_max - q_min), eps)
    zero_point = np.float32(q_min) - np.rint(min_val / scale)
    return float(scale), int(min(max(zero_point, q_min), q_max))


def _broadcast(param: torch.Tensor, x: torch.Tensor, axis: int | None) -> torch.Tensor:
    if axis is None or param.numel() == 1:
        return param.reshape(())
    shape = [1] * x.dim()
    shape[axis] = -1
    return param.reshape(shape)


def quantize_codes(
    x: torch.Tensor,
    scale: torch.Tensor,
    zero_point: torch.Tensor,
    q_min: int,
    q_max: int,
    axis: int | None = None,
    binary: bool = False,
    half_up: bool = False,
) -> torch.Tensor:
    """Integer codes of ``x`` (as an int32 tensor), identical to fake quantization's;
    ties round to even, or towards +inf with ``half_up``."""
    if binary:
        return torch.where(x >= 0, 1, -1).to(torch.int32)
    ratio = x * (1.0 / _broadcast(scale.float(), x, axis))
    rounded = torch.floor(ratio + 0.5) if half_up else torch.round(ratio)
    codes = rounded + _broadcast(zero_point, x, axis)
    return torch.clamp(codes, q_min, q_max).to(torch.int32)


def dequantize_codes(
    codes: torch.Tensor,
    scale: torch.Tensor,
    zero_point: torch.Tensor,
    axis: int | None = None,
) -> torch.Tensor:
    """x_hat = s * (q - z)."""
    centred = (codes - _broadcast(zero_point, codes, axis)).float()
    return centred * _broadcast(scale.float(), codes, axis)


def bias_scale(
    input_scale: torch.Tensor | float, weight_scale: torch.Tensor, channels: int
) -> torch.Tensor:
    """The accumulator's scale s_x * s_w per output channel (float32, as runtimes form it;
    ``input_scale`` is a tensor or a Python number).

    A transposed convolution with groups has weight scales for out_channels / groups
    channels; output channel g * n + c uses scale c.
    """
    if isinstance(input_scale, torch.Tensor):
        input_scale = input_scale.float().reshape(-1)[:1]
    scale = weight_scale.float().reshape(-1) * input_scale
    if scale.numel() not in (1, channels):
        scale = scale.repeat(channels // scale.numel())
    return scale.expand(channels) if scale.numel() == 1 else scale


_INT32_LIMIT = 2**31 - 128  # the largest float32 below 2**31 (which would wrap in int32)


def _bias_grid_steps(bias: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """round(b / (s_x * s_w)) as float32 integers, saturated to the int32 range as an
    accumulator register would be (never wrapped)."""
    return torch.div(bias.float(), scale).round_().clamp_(-_INT32_LIMIT, _INT32_LIMIT)


def bias_codes(bias: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """int32 codes of a bias on the accumulator grid (``scale`` = s_x * s_w)."""
    return _bias_grid_steps(bias, scale).to(torch.int32)


def bias_on_grid(
    bias: torch.Tensor, input_scale: torch.Tensor | float, weight_scale: torch.Tensor
) -> torch.Tensor:
    """The float bias an integer layer adds: its int32 codes times s_x * s_w (the codes
    are integers within float32's exact range, so they are not converted to int32 and
    back). ``input_scale`` may be a Python number (one per-tensor scale)."""
    scale = bias_scale(input_scale, weight_scale, bias.numel())
    return _bias_grid_steps(bias.detach(), scale).mul_(scale)
