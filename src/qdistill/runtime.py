"""Process-level reproducibility: seeding and the versions a result was produced with."""

from __future__ import annotations

import platform
import random
import subprocess
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

_TRACKED_PACKAGES = ("qdistill", "torch", "torchvision", "numpy", "scikit-learn")


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a torch generator seeded the same way."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def collect_versions() -> dict[str, str | int | None]:
    """Versions of Python, the main packages, the platform and the git commit."""
    versions: dict[str, str | int | None] = {"python": platform.python_version()}
    for package in _TRACKED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    versions["platform"] = platform.platform()
    versions["torch_threads"] = torch.get_num_threads()
    versions["cuda"] = torch.version.cuda if torch.cuda.is_available() else None
    versions["git_commit"] = _git_commit()
    return versions
