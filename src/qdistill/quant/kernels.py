"""Fake-quantize functions with straight-through gradients.

On CUDA these are PyTorch's fused fake-quantize kernels. On the CPU the same
arithmetic is composed from vectorised tensor ops instead: ATen's CPU kernel rounds
element by element with ``nearbyint`` and measured 1.5-3.4x slower per forward and
backward here (bench/qat_overhead.py). Both paths give bit-identical results:
``round(x * (1/s)) + z``, clipped to [q_min, q_max], then ``(q - z) * s``, with the
gradient passed where the code was not clipped. With ``half_up`` the codes are
``floor(x * (1/s) + 0.5)`` (ties towards +inf, as FINN's thresholds compare); the fused
kernels only round half to even, so that rounding always takes the composed path.
A per-tensor scale and zero point of a float32 tensor on the CPU are passed to the
composed arithmetic as Python numbers (read once with ``.item()``): the same values
with fewer one-element tensor operations per call.
"""

from __future__ import annotations

import numpy as np
import torch


def along(param: torch.Tensor, x: torch.Tensor, axis: int | None) -> torch.Tensor:
    """``param`` shaped to broadcast against ``x`` along ``axis`` (scalar-like if None)."""
    if axis is None or param.numel() == 1:
        return param.reshape([1] * x.dim()) if x.dim() else param.reshape(())
    shape = [1] * x.dim()
    shape[axis] = -1
    return param.reshape(shape)


def _round_(values: torch.Tensor, half_up: bool) -> torch.Tensor:
    """Round in place: ties to even, or towards +inf with ``half_up``."""
    return values.add_(0.5).floor_() if half_up else values.round_()


def _reciprocal(scale):
    """1 / s in float32: a tensor's, or a Python number's as float32 division rounds it."""
    if isinstance(scale, torch.Tensor):
        return scale.reciprocal()
    return float(np.float32(1.0) / np.float32(scale))


def host_scalars_apply(x: torch.Tensor, scale: torch.Tensor) -> bool:
    """Whether ``scale`` (one value) can be read as a Python number for ``x``: float32
    on the CPU, in eager mode (traced or compiled, ``.item()`` is not a constant)."""
    return (
        scale.numel() == 1
        and x.dtype == torch.float32
        and x.device.type == "cpu"
        and scale.device.type == "cpu"
        and not torch.jit.is_tracing()
        and not torch.compiler.is_compiling()
    )


def fake_quantize_with_mask(x, scale, zero_point, q_min: int, q_max: int, half_up: bool):
    """(x_hat, inside): the composed fake quantization of ``x`` and 1.0 where its code
    was not clipped (the straight-through gradient's mask). No autograd.

    ``scale`` and ``zero_point`` are tensors shaped to broadcast or, per tensor, Python
    numbers; zero point None means 0. The code ``round(x / s) + z`` lies in
    [q_min, q_max] exactly when ``round(x / s)`` lies in [q_min - z, q_max - z], so the
    zero point only moves the clipping bounds (integers in float32: exact).
    """
    codes = _round_(x * _reciprocal(scale), half_up)
    low, high = q_min, q_max
    if zero_point is not None:
        low, high = q_min - zero_point, q_max - zero_point
    centred = codes.clamp(low, high)
    inside = codes.eq_(centred)
    return centred.mul_(scale), inside


def fake_quantize_unclipped(x, scale, half_up: bool):
    """Fake quantization of ``x`` by a scale from its own max |x| over q_max: no code
    leaves [-q_max, q_max] (|x| / s exceeds q_max by a few float32 roundings at most,
    far less than the half that would round past it), so there is nothing to clip."""
    return _round_(x * _reciprocal(scale), half_up).mul_(scale)


class _ComposedFakeQuant(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale, zero_point, q_min: int, q_max: int, half_up: bool):
        values, inside = fake_quantize_with_mask(x, scale, zero_point, q_min, q_max, half_up)
        ctx.save_for_backward(inside)
        return values

    @staticmethod
    def backward(ctx, grad):
        (inside,) = ctx.saved_tensors
        return grad * inside, None, None, None, None, None


class _UnclippedFakeQuant(torch.autograd.Function):
    """For ranges that cover the tensor (symmetric min/max weights): no code is ever
    clipped, so the straight-through gradient is the identity and no mask is kept."""

    @staticmethod
    def forward(ctx, x, scale, half_up: bool):
        return fake_quantize_unclipped(x, scale, half_up)

    @staticmethod
    def backward(ctx, grad):
        return grad, None, None


class BinaryFakeQuant(torch.autograd.Function):
    """x_hat = s * sign(x) (sign(0) = +1); STE inside |x| <= s; d x_hat / d s = sign(x)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, scale)
        return torch.where(x >= 0, scale, -scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        x, scale = ctx.saved_tensors
        grad_x = grad * (x.abs() <= scale)
        grad_scale = None
        if ctx.needs_input_grad[1]:
            sign = torch.where(x >= 0, 1.0, -1.0)
            grad_scale = (grad * sign).sum_to_size(scale.shape)
        return grad_x, grad_scale


def fake_quantize(
    x: torch.Tensor,
    scale: torch.Tensor,
    zero_point: torch.Tensor | None,
    q_min: int,
    q_max: int,
    axis: int | None = None,
    fused: bool | None = None,
    covers_range: bool = False,
    half_up: bool = False,
) -> torch.Tensor:
    """Fake-quantize ``x`` per tensor (axis None) or per channel along ``axis``.

    ``zero_point`` is an int32 tensor, or None for symmetric quantization (zero).
    ``covers_range`` promises that the scale was derived from ``x``'s own max |x| with
    a zero zero point, so nothing clips (a faster CPU path, same result).
    ``fused`` forces (True) or avoids (False) PyTorch's fused kernels; by default they
    are used on CUDA only (never with ``half_up``: they round ties to even).
    """
    if fused is None:
        fused = x.is_cuda
    if fused and not half_up:
        if zero_point is None:
            zero_point = torch.zeros(scale.shape, dtype=torch.int32, device=scale.device)
        if axis is None:
            return torch.fake_quantize_per_tensor_affine(x, scale, zero_point, q_min, q_max)
        return torch.fake_quantize_per_channel_affine(x, scale, zero_point, axis, q_min, q_max)
    if host_scalars_apply(x, scale):
        scale = scale.item()
        zero_point = None if zero_point is None else int(zero_point.item())
    else:
        scale = along(scale, x, axis)
        zero_point = None if zero_point is None else along(zero_point, x, axis).to(x.dtype)
    if covers_range and zero_point is None:
        return _UnclippedFakeQuant.apply(x, scale, half_up)
    return _ComposedFakeQuant.apply(x, scale, zero_point, q_min, q_max, half_up)


class _LearnedHalfUpFakeQuant(torch.autograd.Function):
    """LSQ fake quantization with ties rounded towards +inf. The gradients are those of
    ``torch._fake_quantize_learnable_*`` (which only round half to even): straight
    through inside the range; d/ds = (q - z) - x/s inside and q_min/max - z at the
    clip, scaled by ``grad_factor``."""

    @staticmethod
    def forward(ctx, x, scale, zero_point, q_min: int, q_max: int, grad_factor: float):
        ratio = x * (1.0 / scale)
        codes = _round_(ratio.clone(), half_up=True).add_(zero_point)
        clipped = codes.clamp(q_min, q_max)
        inside = codes.eq(clipped)
        ctx.save_for_backward(ratio, clipped.sub_(zero_point), inside, scale)
        ctx.grad_factor = grad_factor
        return clipped * scale

    @staticmethod
    def backward(ctx, grad):
        ratio, centred, inside, scale = ctx.saved_tensors
        grad_x = grad * inside
        grad_scale = None
        if ctx.needs_input_grad[1]:
            d_scale = torch.where(inside, centred - ratio, centred)
            grad_scale = (grad * d_scale * ctx.grad_factor).sum_to_size(scale.shape)
        return grad_x, grad_scale, None, None, None, None


def learned_fake_quantize_half_up(
    x: torch.Tensor,
    scale: torch.Tensor,
    zero_point: torch.Tensor,
    q_min: int,
    q_max: int,
    axis: int | None,
    grad_factor: float,
) -> torch.Tensor:
    """LSQ fake quantization (learned ``scale``) rounding ties towards +inf."""
    return _LearnedHalfUpFakeQuant.apply(
        x, along(scale, x, axis), along(zero_point, x, axis), q_min, q_max, grad_factor
    )


def binary_fake_quantize(x: torch.Tensor, scale: torch.Tensor, axis: int | None) -> torch.Tensor:
    return BinaryFakeQuant.apply(x, along(scale, x, axis))
