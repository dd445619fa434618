"""ModelConfig: a registered model name and its options, validated on load, optionally
with starting weights from a file."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from pydantic import Field, field_validator, model_validator
from torch import nn

from qdistill.config import StrictConfig, added_later, located_errors
from qdistill.errors import CheckpointError
from qdistill.models.registry import MODELS, build_model
from qdistill.train.checkpoint import check_state_fits, load_checkpoint, load_state_into


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class WeightsFile(StrictConfig):
    """A safetensors (or weights-only torch) file of the model's state dict, and its
    SHA-256, which enters run ids: new contents under the same name are a new model."""

    path: str
    sha256: str

    @model_validator(mode="before")
    @classmethod
    def _hashed(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = {"path": value}
        if not isinstance(value, dict) or "path" not in value:
            return value
        path = Path(value["path"])
        if not path.is_file():
            raise ValueError(f"weights file {path} does not exist")
        actual = file_sha256(path)
        if value.get("sha256", actual) != actual:
            raise ValueError(f"weights file {path} has changed: its SHA-256 is now {actual}")
        return {**value, "sha256": actual}


class ModelConfig(StrictConfig):
    """``name`` of a registered model (a bare string in YAML) and its ``options``;
    ``module: pkg.mod:build`` names a user's own model (``module:pkg.mod:build``);
    ``weights`` a file its state starts from."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)
    weights: WeightsFile | None = added_later(None)

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"name": value}
        if isinstance(value, dict) and "module" in value:
            if "name" in value:
                raise ValueError("give a model 'name' or a 'module', not both")
            value = {"name": f"module:{value['module']}", **value}
            del value["module"]
        return value

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        with located_errors():
            MODELS.get(name)
        return name

    def build(self, input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
        model = build_model(self.name, input_shape, num_outputs, **self.options)
        if self.weights is not None:
            self._load_weights(model)
        return model

    def _load_weights(self, model: nn.Module) -> None:
        source = self.weights.path
        if file_sha256(Path(source)) != self.weights.sha256:
            raise CheckpointError(f"weights file {source} changed after the config was read")
        state, _ = load_checkpoint(source)
        if any(t.is_meta for t in model.state_dict().values()):
            check_state_fits(model, state, source)  # a dry build: shapes only
            return
        with torch.no_grad():
            load_state_into(model, state, source)
