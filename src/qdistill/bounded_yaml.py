"""YAML from files a user was handed: safe types only, bounded in size and expansion.

``yaml.safe_load`` never runs code, but a few hundred bytes of anchors and aliases
("billion laughs") expand to billions of nodes once anything walks the result, and a
recursive alias never ends. :func:`load_yaml` composes the node graph first, measures
its size with every alias expanded (shared nodes counted once per use, computed without
expanding), and builds Python values only when it fits the bounds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from qdistill.errors import ConfigError

MAX_YAML_BYTES = 1 << 20  # 1 MiB; a large sweep config is a few KB
MAX_YAML_NODES = 100_000  # scalars, lists and mappings, aliases expanded


def _expanded_size(root: yaml.Node, source: str) -> int:
    """Node count of ``root`` with every alias expanded; refuses recursive aliases."""
    sizes: dict[int, int] = {}
    pending: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        children = _children(node)
        if children_done:
            pending.discard(key)
            sizes[key] = min(1 + sum(sizes[id(child)] for child in children), MAX_YAML_NODES + 1)
            continue
        if key in pending:
            raise ConfigError(f"{source}: an alias refers to itself; remove the recursive anchor")
        pending.add(key)
        stack.append((node, True))
        for child in children:
            if id(child) in pending:
                raise ConfigError(
                    f"{source}: an alias refers to itself; remove the recursive anchor"
                )
            stack.append((child, False))
    return sizes[id(root)]


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def parse_yaml(text: str, source: str) -> Any:
    """Safe-load ``text`` within the bounds; YAML errors propagate (callers word them)."""
    if len(text.encode("utf-8", errors="replace")) > MAX_YAML_BYTES:
        raise ConfigError(f"{source} is larger than {MAX_YAML_BYTES >> 20} MiB; is it YAML?")
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        if _expanded_size(root, source) > MAX_YAML_NODES:
            raise ConfigError(
                f"{source} expands to more than {MAX_YAML_NODES} values (aliases included); "
                "a config that large is an attack or a mistake"
            )
        return loader.construct_document(root)
    finally:
        loader.dispose()


def load_yaml(path: str | Path, what: str) -> Any:
    """Read and parse the YAML file ``path`` (a ``what``, for messages) within the bounds."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_YAML_BYTES:
            raise ConfigError(f"{what} {path} is larger than {MAX_YAML_BYTES >> 20} MiB")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {path} is not a text file") from None
    except OSError as err:
        raise ConfigError(f"{what} {path} is unreadable ({err.strerror or err})") from None
    return parse_yaml(text, f"{what} {path}")
