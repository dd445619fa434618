"""ModelConfig: a registered model name and its options, validated on load."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator
from torch import nn

from qdistill.config import StrictConfig, located_errors
from qdistill.models.registry import MODELS, build_model


class ModelConfig(StrictConfig):
    """``name`` of a registered model (a bare string in YAML) and its ``options``."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @field_validator("name")
    @classmethod
    def _known(cls, name: str) -> str:
        with located_errors():
            MODELS.get(name)
        return name

    def build(self, input_shape: tuple[int, ...], num_outputs: int) -> nn.Module:
        return build_model(self.name, input_shape, num_outputs, **self.options)
