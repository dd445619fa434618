"""The editable power table behind energy estimates (see power.yaml)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from qdistill.bounded_yaml import load_yaml
from qdistill.errors import ConfigError

DEFAULT_TABLE = Path(__file__).with_name("power.yaml")


@dataclass(frozen=True)
class Platform:
    name: str
    watts: float
    note: str


def power_table(path: str | Path | None = None) -> dict[str, Platform]:
    """Platforms by name from ``path``, $QDISTILL_POWER_TABLE or the shipped table."""
    path = Path(path or os.environ.get("QDISTILL_POWER_TABLE") or DEFAULT_TABLE)
    try:
        raw = load_yaml(path, "power table")
        return {
            name: Platform(name, float(entry["watts"]), str(entry.get("note", "")))
            for name, entry in raw["platforms"].items()
        }
    except (yaml.YAMLError, AttributeError, KeyError, TypeError, ValueError) as err:
        raise ConfigError(
            f"power table {path} is unreadable ({err}); it needs platforms: {{name: "
            "{watts: ..., note: ...}}"
        ) from None


def energy_per_image_j(watts: float, latency_b1_s: float, best_throughput: float) -> float:
    """min(P x latency at batch 1, P / best throughput), in joules per image."""
    return min(watts * latency_b1_s, watts / best_throughput)
