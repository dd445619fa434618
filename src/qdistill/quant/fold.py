"""Fold BatchNorm into the preceding Conv/Linear layer (inference-equivalent).

Pairs are found by tracing the model with torch.fx (a BatchNorm whose only input
is a conv/linear output used nowhere else); models that fx cannot trace fall back
to adjacent (layer, BatchNorm) pairs inside nn.Sequential containers.
"""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_weights, fuse_linear_bn_weights

_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d)
_FOLDABLE = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d)


def _pairs_by_tracing(model: nn.Module) -> list[tuple[str, str]]:
    graph = torch.fx.symbolic_trace(model).graph
    modules = dict(model.named_modules())
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules.get(node.target), _BATCHNORMS):
            continue
        source = node.args[0]
        if (
            isinstance(source, torch.fx.Node)
            and source.op == "call_module"
            and isinstance(modules.get(source.target), _FOLDABLE)
            and len(source.users) == 1
        ):
            pairs.append((source.target, node.target))
    # A module called twice would fold twice; only fold modules that appear once.
    layer_counts = {}
    for layer, _ in pairs:
        layer_counts[layer] = layer_counts.get(layer, 0) + 1
    return [(layer, bn) for layer, bn in pairs if layer_counts[layer] == 1]


def _pairs_in_sequentials(model: nn.Module) -> list[tuple[str, str]]:
    pairs = []
    for prefix, module in model.named_modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module.named_children())
        for (name_a, a), (name_b, b) in pairwise(children):
            if isinstance(a, _FOLDABLE) and isinstance(b, _BATCHNORMS):
                join = f"{prefix}." if prefix else ""
                pairs.append((join + name_a, join + name_b))
    return pairs


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> list[tuple[str, str]]:
    """Fold every foldable BatchNorm in place; return the (layer, batchnorm) pairs folded."""
    try:
        pairs = _pairs_by_tracing(model)
    except Exception:
        pairs = _pairs_in_sequentials(model)
    folded = []
    for layer_name, bn_name in pairs:
        layer = model.get_submodule(layer_name)
        bn = model.get_submodule(bn_name)
        if not bn.track_running_stats or bn.running_mean is None:
            continue  # no running statistics: nothing inference-time to fold
        gamma = bn.weight if bn.weight is not None else torch.ones_like(bn.running_mean)
        beta = bn.bias if bn.bias is not None else torch.zeros_like(bn.running_mean)
        if isinstance(layer, nn.Linear):
            weight, bias = fuse_linear_bn_weights(
                layer.weight, layer.bias, bn.running_mean, bn.running_var, bn.eps, gamma, beta
            )
        else:
            weight, bias = fuse_conv_bn_weights(
                layer.weight,
                layer.bias,
                bn.running_mean,
                bn.running_var,
                bn.eps,
                gamma,
                beta,
                transpose=isinstance(layer, nn.ConvTranspose2d),
            )
        layer.weight, layer.bias = weight, bias
        model.set_submodule(bn_name, nn.Identity())
        folded.append((layer_name, bn_name))
    return folded
