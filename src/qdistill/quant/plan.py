"""QuantPlan: which layers get which LayerQuantSpec, by module-name pattern.

A plan maps patterns to specs, e.g. ``{"*": "w4a4", "classifier": "w8a8",
"features.0": "float"}``. Patterns are shell-style globs over full module names
(``features.*``); a mapping with a ``bits`` key is one spec for all layers
instead. A pattern without wildcards matches that module and everything
inside it. ``@first`` and ``@last`` name the first and last quantizable layer in
module order; ``@pooling`` names every average pooling (which no other wildcard
matches), e.g. ``{"*": "w8a8", "@pooling": "a8"}`` quantizes through the global
pooling. When several patterns match a layer, the most specific one wins:
``@first``/``@last`` first, then the pattern with the most literal characters,
then the later entry. A pattern that matches no layer is an error (a typo would
otherwise silently leave layers unquantized).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase
from typing import Any

from qdistill.errors import ConfigError
from qdistill.quant.spec import LayerQuantSpec, parse_layer_spec

_POSITIONAL = ("@first", "@last")
_POOLING = "@pooling"
_WILDCARDS = "*?["


def _literal_chars(pattern: str) -> int:
    return sum(ch not in _WILDCARDS for ch in pattern)


def pattern_matches(pattern: str, name: str, index: int, count: int) -> bool:
    if pattern == "@first":
        return index == 0
    if pattern == "@last":
        return index == count - 1
    if any(ch in pattern for ch in _WILDCARDS):
        return fnmatchcase(name, pattern)
    return name == pattern or name.startswith(pattern + ".")


def _check_pooling_spec(name: str, spec: LayerQuantSpec | None) -> None:
    if spec is not None and (spec.weight is not None or spec.act is None):
        raise ConfigError(
            f"plan entry {name!r} names an average pooling, which has no weights: give it an "
            "activation spec such as 'a4' (it quantizes the pooling's input)"
        )


class QuantPlan:
    """An ordered list of (pattern, spec) rules; spec None keeps matching layers float."""

    def __init__(self, rules: Sequence[tuple[str, LayerQuantSpec | None]]) -> None:
        if not rules:
            raise ConfigError("quantization plan is empty; give e.g. 'w8a8' or {'*': 'w4a4'}")
        self.rules = list(rules)

    @classmethod
    def from_config(cls, value: Any) -> QuantPlan:
        """Build a plan from 'w4a4', a {pattern: spec} mapping, or an existing plan."""
        if isinstance(value, QuantPlan):
            return value
        if isinstance(value, (str, LayerQuantSpec)) or (
            isinstance(value, Mapping) and "bits" in value
        ):  # one spec for every layer, e.g. {"bits": "w2a2", "weight": {"range": "learned"}}
            return cls([("*", parse_layer_spec(value))])
        if isinstance(value, Mapping):
            rules = []
            for pattern, spec in value.items():
                if not isinstance(pattern, str) or not pattern:
                    raise ConfigError(f"plan pattern {pattern!r} must be a non-empty string")
                if pattern.startswith("@") and pattern not in (*_POSITIONAL, _POOLING):
                    raise ConfigError(
                        f"plan selector {pattern!r} is unknown; use @first, @last or @pooling"
                    )
                try:
                    rules.append((pattern, parse_layer_spec(spec)))
                except ConfigError as err:
                    raise ConfigError(f"plan entry {pattern!r}: {err}") from None
            return cls(rules)
        raise ConfigError(
            f"quantization plan {value!r} must be a string like 'w4a4' or a mapping "
            "of module-name patterns to specs"
        )

    def assign(
        self, layer_names: Sequence[str], pooling_names: Sequence[str] = ()
    ) -> dict[str, LayerQuantSpec | None]:
        """The spec of every layer (None = float); layers no rule matches stay float.
        ``pooling_names`` (average poolings) are matched only by ``@pooling`` or a rule
        naming one exactly (which wins); they are in the result only when one does."""
        count = len(layer_names)
        used: set[str] = {pattern for pattern, _ in self.rules if pattern in pooling_names}
        if pooling_names and any(pattern == _POOLING for pattern, _ in self.rules):
            used.add(_POOLING)
        for pattern, spec in self.rules:
            if pattern in pooling_names or pattern == _POOLING:
                _check_pooling_spec(pattern, spec)
        assignment: dict[str, LayerQuantSpec | None] = {}
        for index, name in enumerate(layer_names):
            best_key: tuple[int, int, int] | None = None
            best_spec: LayerQuantSpec | None = None
            for order, (pattern, spec) in enumerate(self.rules):
                if not pattern_matches(pattern, name, index, count):
                    continue
                used.add(pattern)
                positional = int(pattern in _POSITIONAL)
                key = (positional, _literal_chars(pattern), order)
                if best_key is None or key > best_key:
                    best_key, best_spec = key, spec
            assignment[name] = best_spec
        for pattern, spec in self.rules:
            if pattern == _POOLING:
                assignment.update(dict.fromkeys(pooling_names, spec))
        assignment.update({p: spec for p, spec in self.rules if p in pooling_names})
        unused = [pattern for pattern, _ in self.rules if pattern not in used]
        if unused:
            shown = ", ".join(layer_names[:12]) + (" ..." if count > 12 else "")
            near = [p for p in pooling_names if any(pattern_matches(u, p, 0, 1) for u in unused)]
            hint = (
                f"; average poolings ({', '.join(near)}) take @pooling or a rule naming them"
                if near
                else ""
            )
            hint += "; the model has no average pooling for @pooling" if _POOLING in unused else ""
            raise ConfigError(
                f"plan pattern(s) {unused} match no quantizable layer; layers are: {shown}{hint}"
            )
        return assignment

    def to_config(self) -> dict[str, Any]:
        """JSON-friendly form: {pattern: short form or full spec dict or None}."""
        return {pattern: spec.to_config() if spec else None for pattern, spec in self.rules}

    @property
    def short(self) -> str:
        """'w4a4' for a uniform plan; a default with exceptions as e.g.
        'w4a4+first=w4a8+upsampling=w8a8' (file-name safe); 'mixed' without a default."""
        base = [spec for pattern, spec in self.rules if pattern == "*"]
        if not base:
            return "mixed"
        label = base[-1].short if base[-1] else "float"
        for pattern, spec in self.rules:
            if pattern != "*":
                name = re.sub(r"[^A-Za-z0-9._-]", "-", pattern.lstrip("@"))
                label += f"+{name}={spec.short if spec else 'float'}"
        return label

    def __eq__(self, other: object) -> bool:
        return isinstance(other, QuantPlan) and self.rules == other.rules

    def __hash__(self) -> int:
        return hash(tuple(self.rules))

    def __repr__(self) -> str:
        inner = ", ".join(f"{p!r}: {s.short if s else 'float'}" for p, s in self.rules)
        return f"QuantPlan({{{inner}}})"
