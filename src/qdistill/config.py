"""The base of every validated configuration: unknown keys are errors, values are frozen."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictConfig(BaseModel):
    """A pydantic model that rejects unknown keys (a typo is an error, not a default) and
    cannot be changed after validation."""

    model_config = ConfigDict(extra="forbid", frozen=True)
