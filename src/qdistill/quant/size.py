"""Parameter counts and model size in bytes at the bit widths actually used.

Quantized weights count ``bits`` each (packed), plus a float32 scale per weight
channel (and an int32 zero point when asymmetric), plus the input activation's
scale/zero point; biases and every other parameter or buffer needed at inference
(e.g. BatchNorm statistics) count at their own dtype. Quantizer bookkeeping
(running ranges) is training state and is not counted.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from torch import nn

from qdistill.quant.convert import IntegerLayer
from qdistill.quant.modules import QuantLayer
from qdistill.quant.quantizer import FakeQuantizer

_QPARAM_BYTES = 4  # float32 scale or int32 zero point


@dataclass
class LayerSize:
    name: str
    kind: str
    values: int  # numbers stored: parameters plus inference buffers (BatchNorm statistics)
    weight_bits: int
    act_bits: int
    bytes: int


@dataclass
class ModelSize:
    values: int
    total_bytes: int
    float32_bytes: int  # the same values stored as float32
    layers: list[LayerSize] = field(default_factory=list)

    @property
    def compression(self) -> float:
        return self.float32_bytes / self.total_bytes if self.total_bytes else math.nan

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelSize:
        layers = [LayerSize(**layer) for layer in data["layers"]]
        return cls(data["values"], data["total_bytes"], data["float32_bytes"], layers)


def _layer_storage(module: nn.Module) -> tuple[int, int, int, int]:
    """(values stored, bytes, weight bits, activation bits) of a quantized layer."""
    if isinstance(module, IntegerLayer):
        weight_numel = math.prod(module.weight_shape)
        w_bits, a_bits = module.weight_bits, module.act_bits
        weight_channels = module.weight_scale.numel() if w_bits < 32 else 0
        weight_zero = w_bits < 32 and module.weight_has_zero_point
        act_zero = a_bits < 32 and module.input_has_zero_point
        bias = module.bias_codes if module.integer_bias else module.bias
        bias_numel = bias.numel() if bias is not None else 0
    else:
        weight_numel = module.weight.numel()
        wq, iq = module.weight_quantizer, module.input_quantizer
        w_bits = wq.spec.bits if wq else 32
        a_bits = iq.spec.bits if iq else 32
        weight_channels = (
            module.weight.shape[wq.axis] if wq and wq.axis is not None else int(bool(wq))
        )
        weight_zero = bool(wq) and not wq.spec.symmetric
        act_zero = bool(iq) and not iq.spec.symmetric
        bias_numel = module.bias.numel() if module.bias is not None else 0
    bits = weight_numel * w_bits + 32 * bias_numel
    qparams = weight_channels * (1 + weight_zero) + (a_bits < 32) * (1 + act_zero)
    total = math.ceil(bits / 8) + _QPARAM_BYTES * qparams
    return weight_numel + bias_numel, total, w_bits, a_bits


def model_size(model: nn.Module) -> ModelSize:
    """Size of ``model`` (float, fake-quantized or converted) as it would be deployed."""
    layers: list[LayerSize] = []
    skip_prefixes: list[str] = []
    for name, module in model.named_modules():
        if any(name.startswith(p) for p in skip_prefixes) or isinstance(module, FakeQuantizer):
            continue
        if isinstance(module, (QuantLayer, IntegerLayer)):
            values, size, w_bits, a_bits = _layer_storage(module)
            layers.append(LayerSize(name, type(module).__name__, values, w_bits, a_bits, size))
            skip_prefixes.append(f"{name}.")
            continue
        tensors = list(module.named_parameters(recurse=False)) + [
            (n, b)
            for n, b in module.named_buffers(recurse=False)
            if n != "num_batches_tracked" and n not in module._non_persistent_buffers_set
        ]
        if not tensors:
            continue
        values = sum(t.numel() for _, t in tensors)
        size = sum(t.numel() * t.element_size() for _, t in tensors)
        bits = 8 * size // max(values, 1)
        layers.append(LayerSize(name, type(module).__name__, values, bits, 32, size))
    values = sum(layer.values for layer in layers)
    return ModelSize(
        values=values,
        total_bytes=sum(layer.bytes for layer in layers),
        float32_bytes=4 * values,
        layers=layers,
    )


def count_parameters(model: nn.Module) -> int:
    """Number of trainable and frozen parameters, quantizer scales excluded."""
    return sum(
        p.numel()
        for name, p in model.named_parameters()
        if not any(part.endswith("quantizer") for part in name.split("."))
    )
