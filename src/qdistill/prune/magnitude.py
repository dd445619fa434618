"""Unstructured magnitude pruning: the weights of smallest |w| are set to zero.

``magnitude_masks`` ranks the weights of every conv/linear layer, over all of them
together (``global``: layers with many small weights lose more) or within each layer
(``local``: every layer loses the same fraction), and keeps exactly the largest
``1 - ratio``. ``keep_pruned`` is a training hook that zeroes the gradients of pruned
weights, so SGD, Adam and AdamW (with or without weight decay) leave them at zero.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import torch
from torch import nn

from qdistill.errors import ConfigError
from qdistill.quant.plan import pattern_matches
from qdistill.quant.prepare import quantizable_layers

Masks = dict[str, torch.Tensor]  # layer name -> bool tensor, True = weight kept


def _keep_largest(scores: torch.Tensor, ratio: float) -> torch.Tensor:
    """Bool mask of the ``(1 - ratio)`` share of ``scores`` with the largest values."""
    flat = scores.flatten()
    keep = flat.numel() - int(ratio * flat.numel())
    mask = torch.zeros_like(flat, dtype=torch.bool)
    mask[torch.topk(flat, keep, sorted=False).indices] = True
    return mask.view_as(scores)


def magnitude_masks(
    model: nn.Module,
    ratio: float,
    scope: Literal["global", "local"] = "global",
    ignore: Sequence[str] = (),
) -> Masks:
    """Masks pruning ``ratio`` of the conv/linear weights of smallest magnitude, except in
    layers matching an ``ignore`` pattern (plan patterns: names, globs, ``@last``)."""
    if not 0.0 < ratio < 1.0:
        raise ConfigError(f"pruning ratio must be between 0 and 1, got {ratio}")
    layers = quantizable_layers(model)
    count = len(layers)
    chosen = [
        (name, module)
        for index, (name, module) in enumerate(layers)
        if not any(pattern_matches(p, name, index, count) for p in ignore)
    ]
    if not chosen:
        raise ConfigError("no conv/linear layer is left to prune; check the ignore patterns")
    weights = {name: module.weight.detach().abs() for name, module in chosen}
    if scope == "local":
        return {name: _keep_largest(w, ratio) for name, w in weights.items()}
    flat = _keep_largest(torch.cat([w.flatten() for w in weights.values()]), ratio)
    masks, start = {}, 0
    for name, w in weights.items():
        masks[name] = flat[start : start + w.numel()].view_as(w)
        start += w.numel()
    return masks


@torch.no_grad()
def apply_masks(model: nn.Module, masks: Masks) -> None:
    """Zero the pruned weights of ``model`` in place."""
    for name, mask in masks.items():
        model.get_submodule(name).weight.mul_(mask)


def keep_pruned(masks: Masks) -> Callable[[nn.Module, int], None]:
    """An ``after_backward`` training hook that zeroes the gradients of pruned weights.
    Layers are looked up by name at every step, so quantizing the model in between (which
    replaces the layers under the same names) keeps them pruned."""

    def hook(model: nn.Module, _step: int) -> None:
        for name, mask in masks.items():
            grad = model.get_submodule(name).weight.grad
            if grad is not None:
                grad.mul_(mask)

    return hook


def weight_sparsity(model: nn.Module) -> float:
    """The fraction of conv/linear weights (quantized layers included) that are zero."""
    weights = [
        module.weight
        for module in model.modules()
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d, nn.ConvTranspose2d))
    ]
    total = sum(w.numel() for w in weights)
    return sum(int((w == 0).sum()) for w in weights) / total if total else 0.0
