"""Per-layer compute: multiply-accumulates (MACs) and bit operations (BOPs = MACs x w x a)
at the bit widths each layer uses.

Counted from one forward pass of an example input through forward hooks that are
removed afterwards; the model's mode and parameters are left as they were.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from qdistill.quant.convert import IntegerLayer
from qdistill.quant.modules import QuantLayer

_COUNTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d, IntegerLayer)


@dataclass
class LayerCost:
    name: str
    kind: str
    macs: int  # per input sample
    weight_bits: int
    act_bits: int

    @property
    def bops(self) -> int:
        return self.macs * self.weight_bits * self.act_bits

    def to_dict(self) -> dict:
        return {**asdict(self), "bops": self.bops}

    @classmethod
    def from_dict(cls, data: dict) -> LayerCost:
        return cls(**{k: v for k, v in data.items() if k != "bops"})


def _bits(module: nn.Module) -> tuple[int, int]:
    if isinstance(module, QuantLayer):
        w = module.weight_quantizer.spec.bits if module.weight_quantizer else 32
        a = module.input_quantizer.spec.bits if module.input_quantizer else 32
        return w, a
    if isinstance(module, IntegerLayer):
        return module.weight_bits, module.act_bits
    return 32, 32


def _macs(module: nn.Module, inputs: torch.Tensor, output: torch.Tensor) -> int:
    batch = inputs.shape[0] if inputs.dim() > 1 else 1
    if isinstance(module, IntegerLayer):
        weight = math.prod(module.weight_shape)
        if module.op == "linear":
            return output.numel() // batch * module.weight_shape[1]
        if module.op == "conv_transpose2d":
            return inputs.numel() // batch * weight // module.weight_shape[0]
        return output.numel() // batch * weight // module.weight_shape[0]
    if isinstance(module, nn.Linear):
        return output.numel() // batch * module.in_features
    kernel = math.prod(module.kernel_size)
    if isinstance(module, nn.ConvTranspose2d):
        return inputs.numel() // batch * kernel * module.out_channels // module.groups
    return output.numel() // batch * kernel * module.in_channels // module.groups


@torch.no_grad()
def layer_costs(model: nn.Module, example_input: torch.Tensor) -> list[LayerCost]:
    """MACs and bit widths of every Linear/Conv layer (quantized or not), per sample."""
    costs: list[LayerCost] = []
    handles = []
    for name, module in model.named_modules():
        if isinstance(module, _COUNTED):

            def hook(mod, args, output, name=name):
                costs.append(
                    LayerCost(name, type(mod).__name__, _macs(mod, args[0], output), *_bits(mod))
                )

            handles.append(module.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        model(example_input)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return costs


def total_macs(costs: list[LayerCost]) -> int:
    return sum(c.macs for c in costs)


def total_bops(costs: list[LayerCost]) -> int:
    return sum(c.bops for c in costs)
