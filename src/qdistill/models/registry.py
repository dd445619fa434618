"""The model zoo registry and build_model()."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from qdistill.registry import Registry

# A factory builds a model for inputs of ``input_shape`` (without the batch
# dimension) and ``num_outputs`` classes (classification) or channels.
ModelFactory = Callable[..., nn.Module]
MODELS: Registry[ModelFactory] = Registry("model")


def build_model(
    name: str, input_shape: tuple[int, ...], num_outputs: int, **options: Any
) -> nn.Module:
    """Build the registered model ``name``; unknown options name the accepted ones."""
    fixed = {"input_shape": tuple(input_shape), "num_outputs": num_outputs}
    return MODELS.build(name, fixed, options)


def model_task(name: str) -> str:
    """``classification`` or ``super_resolution`` (a factory's ``task`` attribute)."""
    return getattr(MODELS.get(name), "task", "classification")
