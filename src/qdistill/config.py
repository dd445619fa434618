"""The base of every validated configuration: unknown keys are errors, values are frozen."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_serializer

from qdistill.errors import ConfigError

ADDED_LATER = "added_later"


def added_later(default: Any, **kwargs: Any) -> Any:
    """A field added after runs were recorded: its dump leaves it out while it holds its
    default, so the run ids and float-model cache keys hashed from dumps before it existed
    stay the same (and a recorded config reads back with the default)."""
    return Field(default, json_schema_extra={ADDED_LATER: True}, **kwargs)


class StrictConfig(BaseModel):
    """A pydantic model that rejects unknown keys (a typo is an error, not a default) and
    cannot be changed after validation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_serializer(mode="wrap")
    def _without_later_defaults(self, handler: Any) -> Any:
        data = handler(self)
        if not isinstance(data, dict):
            return data
        for name, info in type(self).model_fields.items():
            extra = info.json_schema_extra
            later = isinstance(extra, dict) and extra.get(ADDED_LATER)
            if later and name in data and getattr(self, name) == info.default:
                del data[name]
        return data


@contextmanager
def located_errors() -> Iterator[None]:
    """Inside a validator: a ConfigError (an unknown name, a bad plan) becomes the
    ValueError pydantic reports with the key it happened at."""
    try:
        yield
    except ConfigError as err:
        raise ValueError(str(err)) from None


_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=-]{0,99}")


def _file_name(name: str) -> str:
    if not _FILE_NAME.fullmatch(name):
        raise ValueError(
            f"name {name!r} becomes part of file and folder names: start with a letter or "
            "digit and use only letters, digits and . _ + = - (at most 100 characters)"
        )
    return name


# A name that becomes part of output paths (an experiment, a student): no separators, no
# leading dot, so it can never leave the output folder.
FileName = Annotated[str, AfterValidator(_file_name)]
