"""What the exporters need to know about each quantized layer, read from qdistill's
own quantizers (the scales and zero points learned in PTQ/QAT, never re-calibrated)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from qdistill.quant.modules import QuantLayer, iter_quant_layers, iter_quant_poolings
from qdistill.quant.qmath import bias_codes, bias_scale, quantize_codes
from qdistill.quant.quantizer import FakeQuantizer, QParams


@dataclass
class TensorQuant:
    """Quantization of one tensor: integer codes' range and parameters."""

    bits: int
    q_min: int
    q_max: int
    scale: np.ndarray  # float32, (channels,) or (1,)
    zero_point: np.ndarray  # int64, same shape
    axis: int | None
    binary: bool
    narrow: bool
    half_up: bool = False  # ties round towards +inf (else to even)

    @property
    def signed(self) -> bool:
        return self.q_min < 0

    @classmethod
    def of(cls, quantizer: FakeQuantizer, q: QParams) -> TensorQuant:
        return cls(
            bits=quantizer.spec.bits,
            q_min=q.q_min,
            q_max=q.q_max,
            scale=q.scale.detach().cpu().float().numpy().reshape(-1),
            zero_point=q.zero_point.detach().cpu().numpy().astype(np.int64).reshape(-1),
            axis=q.axis,
            binary=q.binary,
            narrow=quantizer.spec.narrow_range,
            half_up=q.half_up,
        )


@dataclass
class ExportLayer:
    name: str
    weight: TensorQuant | None
    act: TensorQuant | None
    codes: np.ndarray | None  # integer weight codes (int64), weight-shaped
    dequantized: np.ndarray | None  # s * (q - z): the weight the fake-quant model uses
    bias_codes: np.ndarray | None = None  # int32 bias on the accumulator grid, if integer
    bias_scale: np.ndarray | None = None  # s_x * s_w per output channel (float32)
    pooling: bool = False  # an input-quantized pooling: no weight, found by module path
    global_pooling: bool = False  # that pooling averages whole feature maps (to 1x1)

    @property
    def bias_on_grid(self) -> np.ndarray | None:
        """The float bias the fake-quant model adds (codes x scale), if integer."""
        if self.bias_codes is None:
            return None
        return (self.bias_codes.astype(np.float32) * self.bias_scale).astype(np.float32)

    @property
    def label(self) -> str:
        parts = [f"w{self.weight.bits}"] if self.weight else []
        parts += [f"a{self.act.bits}"] if self.act else []
        return "".join(parts) or "float"


@torch.no_grad()
def export_layers(model: nn.Module) -> list[ExportLayer]:
    """One ExportLayer per quantized layer (and input-quantized pooling, weightless) of a
    prepared, calibrated model."""
    layers = [_export_layer(name, layer) for name, layer in iter_quant_layers(model)]
    for name, pooling in iter_quant_poolings(model):
        act = TensorQuant.of(pooling.input_quantizer, pooling.input_quantizer.qparams())
        whole = isinstance(pooling, nn.AdaptiveAvgPool2d) and _pair(pooling.output_size) == (1, 1)
        layers.append(ExportLayer(name, None, act, None, None, pooling=True, global_pooling=whole))
    return layers


def _pair(size) -> tuple:
    return tuple(size) if isinstance(size, (tuple, list)) else (size, size)


def _export_layer(name: str, layer: QuantLayer) -> ExportLayer:
    weight_quant = act_quant = codes = dequantized = None
    if layer.weight_quantizer is not None:
        weight = layer.weight.detach()
        q = layer.weight_quantizer.qparams(weight)
        weight_quant = TensorQuant.of(layer.weight_quantizer, q)
        code_tensor = quantize_codes(weight, *q)
        dequantized = layer.weight_quantizer(weight).detach().cpu().float().numpy()
        codes = code_tensor.cpu().numpy().astype(np.int64)
    bias_code_array = bias_scale_array = None
    if layer.input_quantizer is not None:
        iq = layer.input_quantizer.qparams()
        act_quant = TensorQuant.of(layer.input_quantizer, iq)
        if layer.bias is not None and layer.layer_spec.integer_bias:
            scale = bias_scale(iq.scale, q.scale, layer.bias.numel())
            bias_code_array = bias_codes(layer.bias.detach(), scale).cpu().numpy()
            bias_scale_array = scale.cpu().numpy().astype(np.float32)
    return ExportLayer(
        name, weight_quant, act_quant, codes, dequantized, bias_code_array, bias_scale_array
    )


def channel_shape(ndim: int, axis: int | None, channels: int) -> list[int]:
    """Broadcast shape of per-channel parameters for a tensor of ``ndim`` dimensions."""
    if axis is None:
        return [1] * ndim if ndim else []
    shape = [1] * ndim
    shape[axis] = channels
    return shape
