"""Rebuilding a channel-pruned model: the registered architecture resized to the tensor
shapes a checkpoint holds.

A pruned model is its registered model with fewer channels in some layers. Its checkpoint
records the float model's changed tensor shapes (``pruned_shapes``, taken right after
pruning, so they survive quantization and BatchNorm folding); loading builds the
registered model, gives those parameters and buffers their recorded shapes and updates the
layer attributes that describe them (``out_channels``, ``in_features``, ``num_features``...),
then quantizes it as recorded, so the weights load and the model runs, exports and
quantizes like any other.
"""

from __future__ import annotations

import torch
from torch import nn

Shapes = dict[str, list[int]]  # tensor name -> shape


def changed_shapes(model: nn.Module, reference: nn.Module) -> Shapes:
    """The tensors of float ``model`` whose shape differs from ``reference`` (the same
    architecture unpruned, e.g. built on the meta device)."""
    original = {name: tensor.shape for name, tensor in reference.state_dict().items()}
    return {
        name: list(tensor.shape)
        for name, tensor in model.state_dict().items()
        if name in original and tensor.shape != original[name]
    }


@torch.no_grad()
def resize(model: nn.Module, shapes: Shapes) -> None:
    """Give ``model``'s tensors named in ``shapes`` those shapes (uninitialised, to be
    loaded next) and update the attributes of their layers."""
    for module_name, module in model.named_modules():
        prefix = f"{module_name}." if module_name else ""
        changed = False
        for name, tensor in list(module.named_parameters(recurse=False)):
            if prefix + name in shapes:
                empty = torch.empty(shapes[prefix + name], dtype=tensor.dtype, device=tensor.device)
                setattr(module, name, nn.Parameter(empty, requires_grad=tensor.requires_grad))
                changed = True
        for name, tensor in list(module.named_buffers(recurse=False)):
            if tensor is not None and prefix + name in shapes:
                empty = torch.empty(shapes[prefix + name], dtype=tensor.dtype, device=tensor.device)
                module.register_buffer(name, empty)
                changed = True
        if changed:
            _update_attributes(module)


def _update_attributes(module: nn.Module) -> None:
    if isinstance(module, nn.modules.conv._ConvNd):
        outs, ins = module.weight.shape[:2]
        if module.transposed:
            outs, ins = ins, outs
            module.in_channels, module.out_channels = ins, outs * module.groups
        else:
            module.in_channels, module.out_channels = ins * module.groups, outs
    elif isinstance(module, nn.Linear):
        module.out_features, module.in_features = module.weight.shape
    elif isinstance(module, nn.modules.batchnorm._NormBase):
        module.num_features = (
            module.running_mean.shape[0]
            if module.running_mean is not None
            else (module.weight.shape[0])
        )
    elif isinstance(module, nn.PReLU):
        module.num_parameters = module.weight.shape[0]
    elif isinstance(module, nn.GroupNorm):
        module.num_channels = module.weight.shape[0]
    elif isinstance(module, nn.LayerNorm):
        module.normalized_shape = tuple(module.weight.shape)
