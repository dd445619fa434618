"""Locate the experiment YAMLs shipped with qdistill (configs/ in a checkout or the wheel)."""

from __future__ import annotations

from pathlib import Path

from qdistill.errors import ConfigError

_CANDIDATES = (
    Path(__file__).resolve().parents[3] / "configs",  # source checkout: <repo>/configs
    Path(__file__).resolve().parents[1] / "configs",  # installed wheel: qdistill/configs
)


def shipped_configs_dir() -> Path:
    for directory in _CANDIDATES:
        if directory.is_dir():
            return directory
    raise ConfigError("qdistill's shipped configs are missing from this installation; reinstall")


def shipped_config(name: str) -> Path:
    """Path of the shipped experiment ``name`` (with or without ``.yaml``)."""
    directory = shipped_configs_dir()
    path = directory / (name if name.endswith(".yaml") else f"{name}.yaml")
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in directory.glob("*.yaml")))
        raise ConfigError(f"no shipped config {name!r}; shipped configs: {known}")
    return path
