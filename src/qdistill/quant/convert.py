"""convert(): freeze a fake-quantized model into integer weights, scales and zero points.

Each quantized layer becomes an :class:`IntegerLayer` holding integer weight codes
(int8, or int16 for 16-bit), per-channel weight scales/zero points and its input
quantizer's scale/zero point. Its forward quantizes the input to integer codes with
the same rounding as fake quantization, accumulates (q_x - z_x) * (q_w - z_w)
exactly (integer-valued float64, like an INT32/INT64 accumulator), then rescales
by s_x * s_w and adds the bias. This is the arithmetic an integer accelerator
runs, and it reproduces the fake-quant forward up to float32 rounding.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from qdistill.errors import ConfigError
from qdistill.quant.modules import QuantConvTranspose2d, QuantLayer, QuantLinear
from qdistill.quant.qmath import bias_codes, bias_scale, quantize_codes


def _op_spec(layer: QuantLayer) -> tuple[str, dict]:
    if isinstance(layer, QuantLinear):
        return "linear", {}
    kwargs = {
        "stride": layer.stride,
        "padding": layer.padding,
        "dilation": layer.dilation,
        "groups": layer.groups,
    }
    if isinstance(layer, QuantConvTranspose2d):
        if layer.padding_mode != "zeros":
            raise ConfigError("ConvTranspose2d supports only zero padding")
        return "conv_transpose2d", {**kwargs, "output_padding": layer.output_padding}
    if layer.padding_mode != "zeros":
        raise ConfigError(
            f"convert supports zero-padded convolutions only, not {layer.padding_mode!r}"
        )
    return f"conv{layer.weight.dim() - 2}d", kwargs


_OPS = {
    "linear": F.linear,
    "conv1d": F.conv1d,
    "conv2d": F.conv2d,
    "conv_transpose2d": F.conv_transpose2d,
}


class IntegerLayer(nn.Module):
    """A frozen quantized layer computing with integer codes and exact accumulation."""

    def __init__(self, layer: QuantLayer) -> None:
        super().__init__()
        self.op, self.op_kwargs = _op_spec(layer)
        self.weight_shape = tuple(layer.weight.shape)
        self.weight_channel_axis = layer.weight_channel_axis
        self.groups = getattr(layer, "groups", 1)
        weight = layer.weight.detach()
        if layer.weight_quantizer is not None:
            wq = layer.weight_quantizer.qparams(weight)
            self.weight_bits = layer.weight_quantizer.spec.bits
            codes = quantize_codes(weight, *wq)
            self.register_buffer("weight_codes", codes.to(_code_dtype(self.weight_bits)))
            self.register_buffer("weight_scale", wq.scale.detach().clone().float())
            self.register_buffer("weight_zero_point", wq.zero_point.detach().clone())
            self.weight_axis = wq.axis
            self.weight_has_zero_point = not layer.weight_quantizer.spec.symmetric
        else:
            self.weight_bits = 32
            self.register_buffer("weight_float", weight.clone())
        # (q_min, q_max, binary) of the input codes; None when the input stays float.
        self.input_code_range: tuple[int, int, bool] | None = None
        if layer.input_quantizer is not None:
            iq = layer.input_quantizer.qparams()
            self.act_bits = layer.input_quantizer.spec.bits
            self.register_buffer("input_scale", iq.scale.detach().clone().float())
            self.register_buffer("input_zero_point", iq.zero_point.detach().clone())
            self.input_code_range = (iq.q_min, iq.q_max, iq.binary)
            self.input_half_up = iq.half_up
            self.input_has_zero_point = not layer.input_quantizer.spec.symmetric
        else:
            self.act_bits = 32
        bias = layer.bias.detach().clone() if layer.bias is not None else None
        # Integer biases live on the accumulator grid and are added before rescaling.
        self.integer_bias = bias is not None and layer.layer_spec.integer_bias
        if self.integer_bias:
            scale = bias_scale(iq.scale, wq.scale, bias.numel())
            self.register_buffer("bias_codes", bias_codes(bias, scale))
            bias = None
        self.register_buffer("bias", bias)

    def _output_scale(self, out: torch.Tensor, input_scale: torch.Tensor) -> torch.Tensor:
        """s_x * s_w laid out along the output-channel dimension of ``out``."""
        scale = self.weight_scale.double()
        if self.weight_axis is not None and self.weight_channel_axis == 1 and self.groups > 1:
            scale = scale.repeat(self.groups)  # transposed conv: out channel = g * n + c
        scale = scale * input_scale.double()
        if scale.numel() == 1:
            return scale.reshape(())
        return scale.reshape(self._channel_shape(out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_code_range is not None:
            q_min, q_max, binary = self.input_code_range
            codes = quantize_codes(
                x,
                self.input_scale,
                self.input_zero_point,
                q_min,
                q_max,
                None,
                binary,
                self.input_half_up,
            )
            x_int = (codes - self.input_zero_point).double()
            input_scale = self.input_scale
        else:
            x_int, input_scale = x.double(), torch.ones(1, device=x.device)
        if self.weight_bits == 32:
            out = _OPS[self.op](
                x_int * input_scale.double(), self.weight_float.double(), None, **self.op_kwargs
            )
        else:
            zp = self.weight_zero_point
            if self.weight_axis is not None:
                shape = [1] * len(self.weight_shape)
                shape[self.weight_axis] = -1
                zp = zp.reshape(shape)
            w_int = (self.weight_codes.to(torch.int32) - zp).double()
            out = _OPS[self.op](x_int, w_int, None, **self.op_kwargs)
            if self.integer_bias:
                out = out + self.bias_codes.double().reshape(self._channel_shape(out))
            out = out * self._output_scale(out, input_scale)
        if self.bias is not None:
            out = out + self.bias.double().reshape(self._channel_shape(out))
        return out.float()

    def _channel_shape(self, out: torch.Tensor) -> list[int]:
        shape = [1] * out.dim()
        shape[-1 if self.op == "linear" else 1] = -1
        return shape

    def extra_repr(self) -> str:
        return (
            f"{self.op}, weight={self.weight_shape}, w_bits={self.weight_bits}, "
            f"a_bits={self.act_bits}"
        )


def _code_dtype(bits: int) -> torch.dtype:
    return torch.int8 if bits <= 8 else torch.int16


def convert(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Replace every quantized layer by its integer form (weights stored as integers)."""
    if not inplace:
        model = copy.deepcopy(model)
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, QuantLayer)]
    if not layers:
        raise ConfigError("model has no quantized layers; call quantize() first")
    for name, layer in layers:
        if layer.input_quantizer is not None and not layer.input_quantizer.is_ready:
            raise ConfigError(
                f"layer {name or '(model)'!r} has no activation range yet; calibrate or train "
                "before convert"
            )
        if not name:  # the model is a single layer
            return IntegerLayer(layer)
        model.set_submodule(name, IntegerLayer(layer))
    return model
