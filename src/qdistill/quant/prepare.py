"""quantize(model, plan): the one entry point that prepares a model for PTQ or QAT."""

from __future__ import annotations

import copy
import warnings
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
from qdistill.quant.unpacked import unpack_layers


def float_layer_type(module: nn.Module) -> type[nn.Module] | None:
    """The layer type qdistill quantizes ``module`` as: its own type, or the Linear/conv
    type it subclasses without changing the computation (e.g. an attention block's
    ``out_proj``); None when qdistill cannot quantize it."""
    for cls in type(module).__mro__:
        if cls in QUANT_LAYER_FOR or cls in QUANT_POOLING_FOR:
            return cls if type(module).forward is cls.forward else None
    return None


def quantizable_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of every layer type qdistill can quantize, in module order.
    quantize() first unpacks attention and LSTM/GRU layers into Linears (see
    :func:`qdistill.quant.unpacked.unpack_layers`); this lists the model as given."""
    return [
        (n, m) for n, m in _outside_fused_attention(model) if float_layer_type(m) in QUANT_LAYER_FOR
    ]


def _outside_fused_attention(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """named_modules() without the children of nn.MultiheadAttention layers: its fused
    forward reads their weights directly, so quantizing them would change nothing."""
    fused = [f"{n}." for n, m in model.named_modules() if isinstance(m, nn.MultiheadAttention)]
    return [(n, m) for n, m in model.named_modules() if not n.startswith(tuple(fused))]


# Per-channel scale and shift of normalisation and activation layers: folded into the
# preceding layer or kept float by design, as in every integer deployment flow.
KEPT_FLOAT = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.PReLU)


def unquantized_parameters(model: nn.Module) -> list[str]:
    """Parameters no quantized layer (or layer a plan can quantize) holds: an LSTM's, an
    attention block's packed projections, a raw parameter used in a matmul. They compute
    in float whatever the plan says; normalisation and activation parameters are not
    listed (see KEPT_FLOAT)."""
    covering = [
        name
        for name, module in _outside_fused_attention(model)
        if isinstance(module, (QuantLayer, QuantPooling, *KEPT_FLOAT))
        or float_layer_type(module) in QUANT_LAYER_FOR
    ]
    prefixes = tuple(f"{name}." for name in covering if name)
    if "" in covering:
        return []
    return [name for name, _ in model.named_parameters() if not name.startswith(prefixes)]


def quantize(
    model: nn.Module,
    plan: Any,
    *,
    fold_bn: bool = False,
    inplace: bool = False,
    strict: bool = False,
) -> nn.Module:
    """Return ``model`` with its Linear/Conv layers replaced by fake-quantized ones.

    ``plan`` is anything :meth:`QuantPlan.from_config` accepts ('w4a4', a
    {pattern: spec} mapping, a QuantPlan). With ``fold_bn`` BatchNorm layers are
    folded into the preceding layer first (use on a trained float model). The
    result trains like any module (QAT) or can be calibrated (PTQ); activation
    ranges need calibration or a first training batch before evaluation.
    Attention (nn.MultiheadAttention), nn.LSTM and nn.GRU layers are first rebuilt from
    Linears computing the same function, which are then quantized like any other.
    Parameters of layers qdistill cannot quantize (see :func:`unquantized_parameters`)
    stay float with an UnquantizedWarning naming them, or a ConfigError with ``strict``.
    """
    plan = QuantPlan.from_config(plan)
    if any(True for _ in iter_quant_layers(model)):
        raise ConfigError("model is already quantized; quantize the float model instead")
    if not inplace:
        model = copy.deepcopy(model)
    if fold_bn:
        fold_batchnorm(model)
    model = unpack_layers(model)
    layers = quantizable_layers(model)
    if not layers:
        raise ConfigError(
            "model has no Linear, Conv1d, Conv2d or ConvTranspose2d layer to quantize"
        )
    poolings = [
        (n, m)
        for n, m in _outside_fused_attention(model)
        if float_layer_type(m) in QUANT_POOLING_FOR
    ]
    assignment = plan.assign([name for name, _ in layers], [name for name, _ in poolings])
    for name, module in layers + [p for p in poolings if assignment.get(p[0]) is not None]:
        spec = assignment[name]
        if spec is None or not (spec.weight or spec.act):
            continue
        kind = float_layer_type(module)
        factory = QUANT_LAYER_FOR.get(kind) or QUANT_POOLING_FOR[kind]
        quantized = factory.from_float(module, spec)
        if not name:  # the model is a single layer
            return quantized
        model.set_submodule(name, quantized)
    _report_float_leftovers(model, strict)
    return model


class UnquantizedWarning(UserWarning):
    """quantize() left parameters of layers it cannot quantize in float."""


def _report_float_leftovers(model: nn.Module, strict: bool) -> None:
    left = unquantized_parameters(model)
    if not left:
        return
    count = sum(model.get_parameter(name).numel() for name in left)
    total = sum(p.numel() for p in model.parameters())
    shown = ", ".join(left[:6]) + (f" and {len(left) - 6} more" if len(left) > 6 else "")
    message = (
        f"{count} of {total} parameters stay float because qdistill cannot quantize their "
        f"layers: {shown}; their size and compute are float in every report and export"
    )
    if strict:
        raise ConfigError(f"{message} (strict=True)")
    warnings.warn(message, UnquantizedWarning, stacklevel=3)


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
