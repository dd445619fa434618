"""Config fields that parse quantization text once, on load: a plan (``w4a4`` or a
``{pattern: spec}`` mapping) becomes a QuantPlan and a layer spec a LayerQuantSpec, and
both serialise back to their explicit form."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer

from qdistill.config import located_errors
from qdistill.quant import LayerQuantSpec, QuantPlan, parse_layer_spec


def _plan(value: Any) -> QuantPlan:
    with located_errors():
        return QuantPlan.from_config(value)


def layer_spec(value: Any) -> LayerQuantSpec:
    """A layer spec that quantizes something (``float`` is refused)."""
    with located_errors():
        spec = parse_layer_spec(value)
    if spec is None:
        raise ValueError(f"{value!r} keeps layers float; give a quantization spec such as w8a8")
    return spec


PlanField = Annotated[
    QuantPlan, BeforeValidator(_plan), PlainSerializer(lambda plan: plan.to_config())
]
LayerSpecField = Annotated[
    LayerQuantSpec, BeforeValidator(layer_spec), PlainSerializer(lambda spec: spec.to_config())
]
