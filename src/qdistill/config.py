"""The base of every validated configuration: unknown keys are errors, values are frozen."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import BaseModel, ConfigDict

from qdistill.errors import ConfigError


class StrictConfig(BaseModel):
    """A pydantic model that rejects unknown keys (a typo is an error, not a default) and
    cannot be changed after validation."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@contextmanager
def located_errors() -> Iterator[None]:
    """Inside a validator: a ConfigError (an unknown name, a bad plan) becomes the
    ValueError pydantic reports with the key it happened at."""
    try:
        yield
    except ConfigError as err:
        raise ValueError(str(err)) from None
