"""quantize(model, plan): the one entry point that prepares a model for PTQ or QAT."""

from __future__ import annotations

import copy
from typing import Any

from torch import nn

from qdistill.errors import ConfigError
from qdistill.quant.fold import fold_batchnorm
from qdistill.quant.modules import (
    QUANT_LAYER_FOR,
    QUANT_POOLING_FOR,
    QuantLayer,
    QuantPooling,
    iter_quant_layers,
    iter_quant_poolings,
)
from qdistill.quant.plan import QuantPlan
from qdistill.quant.spec import LayerQuantSpec


def quantizable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every layer type qdistill can quantize, in module order."""
    return [(n, m) for n, m in model.named_modules() if type(m) in QUANT_LAYER_FOR]


def quantize(
    model: nn.Module, plan: Any, *, fold_bn: bool = False, inplace: bool = False
) -> nn.Module:
    """Return ``model`` with its Linear/Conv layers replaced by fake-quantized ones.

    ``plan`` is anything :meth:`QuantPlan.from_config` accepts ('w4a4', a
    {pattern: spec} mapping, a QuantPlan). With ``fold_bn`` BatchNorm layers are
    folded into the preceding layer first (use on a trained float model). The
    result trains like any module (QAT) or can be calibrated (PTQ); activation
    ranges need calibration or a first training batch before evaluation.
    """
    plan = QuantPlan.from_config(plan)
    if any(True for _ in iter_quant_layers(model)):
        raise ConfigError("model is already quantized; quantize the float model instead")
    if not inplace:
        model = copy.deepcopy(model)
    if fold_bn:
        fold_batchnorm(model)
    layers = quantizable_layers(model)
    if not layers:
        raise ConfigError(
            "model has no Linear, Conv1d, Conv2d or ConvTranspose2d layer to quantize"
        )
    poolings = [(n, m) for n, m in model.named_modules() if type(m) in QUANT_POOLING_FOR]
    assignment = plan.assign([name for name, _ in layers], [name for name, _ in poolings])
    for name, module in layers + [p for p in poolings if assignment.get(p[0]) is not None]:
        spec = assignment[name]
        if spec is None or not (spec.weight or spec.act):
            continue
        factory = QUANT_LAYER_FOR.get(type(module)) or QUANT_POOLING_FOR[type(module)]
        quantized = factory.from_float(module, spec)
        if not name:  # the model is a single layer
            return quantized
        model.set_submodule(name, quantized)
    return model


def layer_specs(model: nn.Module) -> dict[str, LayerQuantSpec]:
    """The spec each quantized layer (and input-quantized pooling) uses, by module name."""
    specs = {name: layer.layer_spec for name, layer in iter_quant_layers(model)}
    return specs | {name: p.layer_spec for name, p in iter_quant_poolings(model)}


def plan_of(model: nn.Module) -> QuantPlan:
    """An explicit plan (one rule per layer) that re-creates ``model``'s quantization."""
    specs = layer_specs(model)
    if not specs:
        raise ConfigError("model is not quantized")
    return QuantPlan(list(specs.items()))


def is_quantized(model: nn.Module) -> bool:
    return any(isinstance(m, (QuantLayer, QuantPooling)) for m in model.modules())
