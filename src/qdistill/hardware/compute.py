"""The compute unit of a quantized layer (matrix-vector, or vector-vector for a depthwise
convolution): its shape and the integer widths read from the layer's actual weights as
FINN minimises them (the weight type that holds
the codes, the accumulator width the codes and the input range need)."""

from __future__ import annotations

import math

import torch

from qdistill.hardware.depthwise import VectorVector
from qdistill.hardware.dot_product import MatrixVector
from qdistill.quant.modules import QuantConvTranspose2d, QuantLayer
from qdistill.quant.qmath import quantize_codes


def _integer_shape(layer: QuantLayer) -> dict:
    """The widths a FINN compute unit of ``layer`` works with: weight bits from the actual
    codes, input bits and sign, and the accumulator they need."""
    act = layer.input_quantizer
    bits = 1 if act.binary else act.spec.bits
    weight = layer.weight.detach()
    if isinstance(layer, QuantConvTranspose2d):
        weight = weight.transpose(0, 1)
    codes = weight_codes(layer)
    if act.signed is None:  # not calibrated yet: assume the signed range
        low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    else:
        low, high = (-1, 1) if act.binary else (act.q_min, act.q_max)
    return {
        "weight_bits": weight_bits(codes, layer),
        "input_bits": bits,
        "input_signed": low < 0,
        "acc_bits": accumulator_bits(codes, low, high, weight),
    }


def _pixels(out_shape: tuple[int, ...]) -> int:
    return math.prod(out_shape[1:]) if len(out_shape) > 1 else 1


def matrix_vector_unit(
    name: str, layer: QuantLayer, source: str, out_shape: tuple[int, ...]
) -> MatrixVector:
    """The MVAU computing ``layer`` (named ``name``) from the unit ``source``."""
    return MatrixVector(
        name=f"{name}:mvau",
        layer=name,
        channels=out_shape[0],
        pixels=_pixels(out_shape),
        inputs=[source],
        mw=layer.weight[0].numel(),
        **_integer_shape(layer),
    )


def vector_vector_unit(
    name: str, layer: QuantLayer, source: str, out_shape: tuple[int, ...], window: str
) -> VectorVector:
    """The VVAU computing depthwise convolution ``layer`` from ``source`` (the depthwise
    sliding window ``window``, or "" for a 1x1 kernel)."""
    kernel = tuple(layer.kernel_size) if len(layer.kernel_size) == 2 else (1, *layer.kernel_size)
    return VectorVector(
        name=f"{name}:vvau",
        layer=name,
        channels=out_shape[0],
        pixels=_pixels(out_shape),
        inputs=[source],
        kernel=kernel,
        window=window,
        **_integer_shape(layer),
    )


def weight_codes(layer: QuantLayer) -> torch.Tensor | None:
    """Integer weight codes (output channel first), or None before calibration."""
    quantizer = layer.weight_quantizer
    weight = layer.weight.detach()
    try:
        q = quantizer.qparams(weight)
    except RuntimeError:
        return None
    codes = quantize_codes(weight, *q)
    zero_point_shape = [1] * codes.dim()
    if q.axis is not None:
        zero_point_shape[q.axis] = -1
    codes = codes - q.zero_point.reshape(zero_point_shape)
    if isinstance(layer, QuantConvTranspose2d):
        codes = codes.transpose(0, 1)
    return codes.reshape(codes.shape[0], -1).long()


def weight_bits(codes: torch.Tensor | None, layer: QuantLayer) -> int:
    """FINN's minimised weight width: the smallest integer type holding the codes."""
    quantizer = layer.weight_quantizer
    if codes is None:
        return 1 if quantizer.binary else quantizer.spec.bits
    low, high = int(codes.min()), int(codes.max())
    if low < 0:
        value = low if -low > high else -high - 1
        return max(2, math.ceil(math.log2(-value)) + 1)
    return max(1, math.ceil(math.log2(high + 1)))


def accumulator_bits(codes, lo: int, hi: int, weight: torch.Tensor) -> int:
    """Accumulator width for inputs in [lo, hi] (FINN's minimize_accumulator_width)."""
    if codes is None:
        bound = int(2 ** (weight[0].numel().bit_length() + 16))
        acc_min, acc_max = -bound, bound - 1
    else:
        products = torch.stack([codes * lo, codes * hi])
        acc_min = int(products.amin(0).sum(1).min())
        acc_max = int(products.amax(0).sum(1).max())
    if acc_min >= 0:
        return max(1, math.ceil(math.log2(acc_max + 1)))
    return math.ceil(math.log2(max(-acc_min, 1 + acc_max)) + 1)
