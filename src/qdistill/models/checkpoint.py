"""Save a model with what is needed to rebuild it; rebuild and load it later.

The metadata records the registered model name and options, the input shape and
output count, and, for quantized models, the per-layer plan (and whether
BatchNorm was folded) so the same fake-quant structure is prepared before the
weights, scales and ranges are loaded; half-precision models record their plan.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from torch import nn

from qdistill.errors import CheckpointError, QdistillError
from qdistill.models.registry import build_model
from qdistill.prune.reshape import Shapes, resize
from qdistill.quant import is_quantized, plan_of, quantize
from qdistill.quant.half import HalfPlan, half_plan_of, half_precision
from qdistill.train.checkpoint import (
    check_state_fits,
    load_checkpoint,
    load_state_into,
    save_checkpoint,
)

FORMAT_VERSION = 1
MAX_DIMENSION = 1 << 20  # bound on an input dimension or output count read from a file


def save_model(
    path: str | Path,
    model: nn.Module,
    *,
    model_name: str,
    model_options: dict[str, Any] | None = None,
    input_shape: tuple[int, ...],
    num_outputs: int,
    fold_bn: bool = False,
    pruned_shapes: Shapes | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` and the recipe to rebuild it (see :func:`load_model`);
    ``pruned_shapes``: the float model's tensor shapes changed by channel pruning
    (:func:`qdistill.prune.reshape.changed_shapes`)."""
    metadata = {
        "format": FORMAT_VERSION,
        "model": model_name,
        "model_options": model_options or {},
        "input_shape": list(input_shape),
        "num_outputs": num_outputs,
        "quant_plan": plan_of(model).to_config() if is_quantized(model) else None,
        "fold_bn": fold_bn,
        "half_precision": half_plan_of(model),
        "pruned_shapes": pruned_shapes or None,
        **(extra or {}),
    }
    return save_checkpoint(path, model, metadata)


class ModelMetadata(BaseModel):
    """The part of a checkpoint's metadata that rebuilds its model, validated before
    anything is built (a checkpoint is untrusted input). Other keys (metrics, recipe,
    versions) pass through."""

    model_config = ConfigDict(extra="allow", frozen=True)

    format: int = Field(FORMAT_VERSION, ge=1, le=FORMAT_VERSION)
    model: str
    model_options: dict[str, Any] = Field(default_factory=dict)
    input_shape: list[Annotated[int, Field(ge=1, le=MAX_DIMENSION)]] = Field(
        min_length=1, max_length=4
    )
    num_outputs: int = Field(ge=1, le=MAX_DIMENSION)
    quant_plan: dict[str, Any] | None = None
    fold_bn: bool = False
    half_precision: dict[str, Any] | None = None
    pruned_shapes: dict[str, list[Annotated[int, Field(ge=0, le=MAX_DIMENSION)]]] | None = None


def read_metadata(metadata: dict[str, Any], path: str | Path) -> ModelMetadata:
    """Validate the rebuild recipe of a checkpoint; a bad field is one CheckpointError."""
    if "model" not in metadata:
        raise CheckpointError(
            f"{path} has no qdistill metadata (model name, input shape); it was not written "
            "by qdistill, so load it into your own model with load_checkpoint()"
        )
    try:
        return ModelMetadata.model_validate(metadata)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise CheckpointError(
            f"{path}: metadata field {where!r} is invalid ({first['msg']}); the file is "
            "damaged or was not written by this qdistill"
        ) from None


def _rebuild(metadata: ModelMetadata, path: str | Path) -> nn.Module:
    try:
        model = build_model(
            metadata.model,
            tuple(metadata.input_shape),
            metadata.num_outputs,
            **metadata.model_options,
        )
        if metadata.pruned_shapes:
            resize(model, metadata.pruned_shapes)
        if metadata.quant_plan:
            model = quantize(model, metadata.quant_plan, fold_bn=metadata.fold_bn)
        if metadata.half_precision:
            model = half_precision(model, HalfPlan.from_config(metadata.half_precision))
    except QdistillError as err:
        raise CheckpointError(f"{path}: cannot rebuild its model: {err}") from None
    return model


def load_model(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild the model a qdistill checkpoint describes and load its state.

    The model is first built on the meta device (no memory) and its tensor names and
    shapes compared with the file's, so metadata asking for a model the weights do not
    fit (or one of hundreds of GB) is refused before anything is allocated."""
    state, raw = load_checkpoint(path)
    metadata = read_metadata(raw, path)
    with torch.device("meta"):
        skeleton = _rebuild(metadata, path)
    check_state_fits(skeleton, state, str(path))
    model = _rebuild(metadata, path)
    load_state_into(model, state, str(path))
    model.eval()
    return model, raw
