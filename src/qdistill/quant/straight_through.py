"""A quantized Linear as one autograd node: QuantLinear's path on the CPU.

Composed, a quantized Linear records a dozen autograd nodes (two fake quantizers, the
bias's straight-through rounding, reshapes, the product), and on an MLP the per-node
costs come close to the matmuls' own. Here the quantized operands are computed without
autograd and one node carries the straight-through gradients: the input's is zero where
its code was clipped, the weight's passes unchanged (its min/max range covers it, so
nothing clips) and so does the bias's. Values and gradients are those of the composed
path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from qdistill.quant.kernels import (
    along,
    fake_quantize_unclipped,
    fake_quantize_with_mask,
    host_scalars_apply,
)
from qdistill.quant.qmath import bias_on_grid


class _StraightThroughLinear(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, x_hat, inside, w_hat, b_hat):
        ctx.save_for_backward(x_hat, inside, w_hat)
        return F.linear(x_hat, w_hat, b_hat)

    @staticmethod
    def backward(ctx, grad):
        x_hat, inside, w_hat = ctx.saved_tensors
        grad_x = grad_w = grad_b = None
        rows = grad.reshape(-1, grad.shape[-1])
        if ctx.needs_input_grad[0]:
            grad_x = grad.matmul(w_hat).mul_(inside)
        if ctx.needs_input_grad[1]:
            grad_w = rows.t().mm(x_hat.reshape(-1, x_hat.shape[-1]))
        if ctx.needs_input_grad[2]:
            grad_b = rows.sum(0)
        return grad_x, grad_w, grad_b, None, None, None, None


def straight_through_applies(layer, x: torch.Tensor) -> bool:
    """Whether ``layer`` (a QuantLinear) can take the one-node path for input ``x``."""
    act, weight = layer.input_quantizer, layer.weight_quantizer
    return (
        act is not None
        and weight is not None
        and act.fake_quant_enabled
        and weight.fake_quant_enabled
        and act.plain_affine
        and act.axis is None
        and weight.plain_affine
        and weight.covers_range
        and host_scalars_apply(x, act.scale)
    )


def straight_through_linear(layer, x: torch.Tensor) -> torch.Tensor:
    """``layer``'s quantized output for ``x`` (see straight_through_applies)."""
    act, weight_quantizer = layer.input_quantizer, layer.weight_quantizer
    act.observe(x)
    act.require_range()
    with torch.no_grad():
        scale = act.scale.item()
        zero_point = None if act.spec.symmetric else int(act.zero_point.item())
        x_hat, inside = fake_quantize_with_mask(
            x.detach(), scale, zero_point, act.q_min, act.q_max, half_up=False
        )
        weight = layer.weight.detach()
        w_scale, _ = weight_quantizer.weight_qparams(weight)
        w_hat = fake_quantize_unclipped(
            weight, along(w_scale, weight, weight_quantizer.axis), half_up=False
        )
        bias = layer.bias
        if bias is not None and layer.layer_spec.integer_bias:
            bias = bias_on_grid(bias, scale, w_scale)
    act.last_scale, weight_quantizer.last_scale = act.scale.detach(), w_scale
    return _StraightThroughLinear.apply(x, layer.weight, layer.bias, x_hat, inside, w_hat, bias)
