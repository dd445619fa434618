"""Save a model with what is needed to rebuild it; rebuild and load it later.

The metadata records the registered model name and options, the input shape and
output count, and, for quantized models, the per-layer plan (and whether
BatchNorm was folded) so the same fake-quant structure is prepared before the
weights, scales and ranges are loaded; half-precision models record their plan.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from qdistill.errors import CheckpointError, QdistillError
from qdistill.models.registry import build_model
from qdistill.quant import is_quantized, plan_of, quantize
from qdistill.quant.half import HalfPlan, half_plan_of, half_precision
from qdistill.train.checkpoint import load_checkpoint, load_state_into, save_checkpoint

FORMAT_VERSION = 1


def save_model(
    path: str | Path,
    model: nn.Module,
    *,
    model_name: str,
    model_options: dict[str, Any],
    input_shape: tuple[int, ...],
    num_outputs: int,
    fold_bn: bool = False,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` and the recipe to rebuild it (see :func:`load_model`)."""
    metadata = {
        "format": FORMAT_VERSION,
        "model": model_name,
        "model_options": model_options,
        "input_shape": list(input_shape),
        "num_outputs": num_outputs,
        "quant_plan": plan_of(model).to_config() if is_quantized(model) else None,
        "fold_bn": fold_bn,
        "half_precision": half_plan_of(model),
        **(extra or {}),
    }
    return save_checkpoint(path, model, metadata)


def load_model(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a qdistill checkpoint describes and load its state."""
    state, metadata = load_checkpoint(path)
    if "model" not in metadata:
        raise CheckpointError(
            f"{path} has no qdistill metadata (model name, input shape); it was not written "
            "by qdistill, so load it into your own model with load_checkpoint()"
        )
    try:
        model = build_model(
            metadata["model"],
            tuple(metadata["input_shape"]),
            metadata["num_outputs"],
            **metadata.get("model_options", {}),
        )
        if metadata.get("quant_plan"):
            model = quantize(model, metadata["quant_plan"], fold_bn=metadata.get("fold_bn", False))
        if metadata.get("half_precision"):
            model = half_precision(model, HalfPlan.from_config(metadata["half_precision"]))
    except QdistillError as err:
        raise CheckpointError(f"{path}: cannot rebuild its model: {err}") from None
    load_state_into(model, state, str(path))
    model.eval()
    return model, metadata
