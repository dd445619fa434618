"""Name -> object registries used by models, datasets and other pluggable parts.

A decorator at the definition registers an object under the string that YAML
files and the CLI use; looking up an unknown name fails with the list of known
names, so a typo tells the user what would have worked.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from difflib import get_close_matches
from typing import Any, Generic, TypeVar

from qdistill.errors import ConfigError, UnknownNameError

T = TypeVar("T")


def unknown_name(kind: str, name: str, known: list[str], where: str = "") -> UnknownNameError:
    """The error for a ``kind`` called ``name`` that is not among ``known``: the closest
    known name as a hint, and the list (``where`` says where they come from)."""
    close = get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    source = f" in {where}" if where else ""
    return UnknownNameError(
        f"unknown {kind} {name!r}{hint}; known {kind}s{source}: {', '.join(known)}"
    )


class Registry(Generic[T]):
    """A named collection of objects of one kind (e.g. "model", "dataset")."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._families: dict[str, Callable[[str], T]] = {}

    def register_family(self, prefix: str, resolve: Callable[[str], T]) -> None:
        """Names ``<prefix>:<member>`` resolve through ``resolve(member)``, which raises
        ``UnknownNameError`` for a member it does not know (e.g. ``torchvision:resnet18``)."""
        self._families[prefix] = resolve

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering the decorated object under ``name``."""

        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        if name in self._entries:
            return self._entries[name]
        prefix, sep, member = name.partition(":")
        if sep and prefix in self._families:
            return self._families[prefix](member)
        families = [f"{prefix}:<name>" for prefix in sorted(self._families)]
        raise unknown_name(self.kind, name, self.names() + families)

    def build(self, name: str, fixed: dict[str, Any], options: dict[str, Any]) -> Any:
        """Call the factory ``name`` with ``fixed`` arguments (supplied by qdistill) and
        user ``options``; an unknown option or an invalid value is a ConfigError."""
        factory = self.get(name)
        parameters = inspect.signature(factory).parameters
        accepted = [p for p in parameters if p not in fixed]
        open_ended = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
        unknown = sorted(set(options) - set(accepted))
        if unknown and not open_ended:  # a **kwargs factory checks its options itself
            raise ConfigError(
                f"{self.kind} {name!r} has no option(s) {unknown}; its options are: "
                f"{', '.join(accepted) or 'none'}"
            )
        try:
            return factory(**fixed, **options)
        except (TypeError, ValueError) as err:
            raise ConfigError(
                f"{self.kind} {name!r} cannot be built with {options}: {err}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)
