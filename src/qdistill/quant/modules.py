"""Quantized drop-in replacements for Linear, Conv1d, Conv2d and ConvTranspose2d.

Each layer fake-quantizes its input activation and its weight, then runs the float
op: the accumulator and the bias stay wide (the float analogue of INT32). The
layer keeps the original Parameter objects, so optimisers and state dicts see the
same weights under the same names.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from qdistill.quant.qmath import bias_on_grid
from qdistill.quant.quantizer import FakeQuantizer
from qdistill.quant.spec import LayerQuantSpec
from qdistill.quant.straight_through import straight_through_applies, straight_through_linear


class QuantLayer:
    """Mixin shared by the quantized layers: two quantizers and the spec they came from."""

    weight: nn.Parameter
    bias: nn.Parameter | None
    input_quantizer: FakeQuantizer | None
    weight_quantizer: FakeQuantizer | None
    layer_spec: LayerQuantSpec
    # Axis of the weight that indexes output channels (1 for transposed convolutions).
    weight_channel_axis = 0
    float_type: type[nn.Module]

    def _attach_quantizers(self, spec: LayerQuantSpec) -> None:
        self.layer_spec = spec
        device = self.weight.device
        self.input_quantizer = FakeQuantizer(spec.act, "act", device=device) if spec.act else None
        self.weight_quantizer = (
            FakeQuantizer(
                spec.weight,
                "weight",
                channel_axis=self.weight_channel_axis,
                num_channels=self.weight.shape[self.weight_channel_axis],
                device=device,
            )
            if spec.weight
            else None
        )

    def quantized_input(self, x: torch.Tensor) -> torch.Tensor:
        return self.input_quantizer(x) if self.input_quantizer is not None else x

    def quantized_weight(self) -> torch.Tensor:
        return self.weight_quantizer(self.weight) if self.weight_quantizer else self.weight

    def quantized_bias(self) -> torch.Tensor | None:
        """The bias, rounded to the accumulator grid when the spec asks for integer biases
        (straight-through gradient). Call after quantized_input/quantized_weight, whose
        scales it uses."""
        if self.bias is None or not self.layer_spec.integer_bias:
            return self.bias
        if self.input_quantizer.last_scale is None or self.weight_quantizer.last_scale is None:
            return self.bias  # quantizers bypassed (calibration of float activations)
        on_grid = bias_on_grid(
            self.bias, self.input_quantizer.last_scale, self.weight_quantizer.last_scale
        )
        return self.bias + (on_grid - self.bias).detach()

    def _quantized_operands(self, x: torch.Tensor):
        """(input, weight, bias) as the layer computes with them, in the order they need."""
        x = self.quantized_input(x)
        weight = self.quantized_weight()
        return x, weight, self.quantized_bias()

    @classmethod
    def from_float(cls, module: nn.Module, spec: LayerQuantSpec) -> nn.Module:
        """Wrap ``module``'s parameters (not copies) in a quantized layer."""
        layer = cls(**cls._constructor_args(module), device="meta")
        layer.weight = module.weight
        layer.bias = module.bias
        layer.train(module.training)
        layer._attach_quantizers(spec)
        return layer

    @staticmethod
    def _constructor_args(module: nn.Module) -> dict:
        raise NotImplementedError


def _conv_args(module: nn.Module) -> dict:
    return {
        "in_channels": module.in_channels,
        "out_channels": module.out_channels,
        "kernel_size": module.kernel_size,
        "stride": module.stride,
        "padding": module.padding,
        "dilation": module.dilation,
        "groups": module.groups,
        "bias": module.bias is not None,
        "padding_mode": module.padding_mode,
    }


class QuantLinear(QuantLayer, nn.Linear):
    float_type = nn.Linear

    @staticmethod
    def _constructor_args(module: nn.Module) -> dict:
        return {
            "in_features": module.in_features,
            "out_features": module.out_features,
            "bias": module.bias is not None,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if straight_through_applies(self, x):
            return straight_through_linear(self, x)
        return F.linear(*self._quantized_operands(x))


class QuantConv1d(QuantLayer, nn.Conv1d):
    float_type = nn.Conv1d
    _constructor_args = staticmethod(_conv_args)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(*self._quantized_operands(x))


class QuantConv2d(QuantLayer, nn.Conv2d):
    float_type = nn.Conv2d
    _constructor_args = staticmethod(_conv_args)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(*self._quantized_operands(x))


class QuantConvTranspose2d(QuantLayer, nn.ConvTranspose2d):
    float_type = nn.ConvTranspose2d
    weight_channel_axis = 1

    @staticmethod
    def _constructor_args(module: nn.Module) -> dict:
        return {**_conv_args(module), "output_padding": module.output_padding}

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        output_padding = self._output_padding(
            x, output_size, self.stride, self.padding, self.kernel_size, 2, self.dilation
        )
        return F.conv_transpose2d(
            *self._quantized_operands(x),
            self.stride,
            self.padding,
            output_padding,
            self.groups,
            self.dilation,
        )


QUANT_LAYER_FOR: dict[type[nn.Module], type[QuantLayer]] = {
    cls.float_type: cls for cls in (QuantLinear, QuantConv1d, QuantConv2d, QuantConvTranspose2d)
}


class QuantPooling:
    """Mixin: an average pooling whose input is quantized (a quantization point where no
    weighted layer is, as dataflow compilers need before pooling: FINN only pools
    quantized values). Only a plan rule naming the module places one."""

    input_quantizer: FakeQuantizer
    layer_spec: LayerQuantSpec
    float_type: type[nn.Module]

    @classmethod
    def from_float(cls, module: nn.Module, spec: LayerQuantSpec) -> nn.Module:
        pooling = _retyped(module, cls)
        pooling.layer_spec = spec
        pooling.input_quantizer = FakeQuantizer(spec.act, "act")
        pooling.input_quantizer.train(module.training)
        return pooling

    def as_float(self) -> nn.Module:
        plain = _retyped(self, self.float_type)
        del plain._modules["input_quantizer"]
        del plain.__dict__["layer_spec"]
        return plain

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.input_quantizer(x))


def _retyped(module: nn.Module, cls: type[nn.Module]) -> nn.Module:
    """A copy of a parameter-free ``module`` as class ``cls`` (its settings kept; its
    parameter, buffer, module and hook tables copied, not shared)."""
    copied = cls.__new__(cls)
    copied.__dict__ = {
        key: dict(value) if isinstance(value, dict) else value
        for key, value in module.__dict__.items()
    }
    return copied


class QuantAvgPool2d(QuantPooling, nn.AvgPool2d):
    float_type = nn.AvgPool2d


class QuantAdaptiveAvgPool2d(QuantPooling, nn.AdaptiveAvgPool2d):
    float_type = nn.AdaptiveAvgPool2d


QUANT_POOLING_FOR: dict[type[nn.Module], type[QuantPooling]] = {
    cls.float_type: cls for cls in (QuantAvgPool2d, QuantAdaptiveAvgPool2d)
}


def iter_quant_layers(model: nn.Module):
    """(name, layer) for every quantized layer of ``model``, in module order."""
    for name, module in model.named_modules():
        if isinstance(module, QuantLayer):
            yield name, module


def iter_quant_poolings(model: nn.Module):
    """(name, pooling) for every input-quantized pooling of ``model``, in module order."""
    for name, module in model.named_modules():
        if isinstance(module, QuantPooling):
            yield name, module


def iter_quantizers(model: nn.Module):
    """(name, quantizer) for every FakeQuantizer of ``model``."""
    for name, module in model.named_modules():
        if isinstance(module, FakeQuantizer):
            yield name, module
