"""Pareto fronts and hypervolume of objective vectors, all to be minimised.

Hypervolume is measured after scaling each objective to [0, 1] between an ``ideal`` and
a ``nadir`` point and taking (1, ..., 1) as the reference, so objectives in different
units weigh alike; comparisons between searches must use the same ideal and nadir.
"""

from __future__ import annotations

import numpy as np
from pymoo.indicators.hv import HV


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    """``a`` is no worse than ``b`` in every objective and better in one."""
    return bool(np.all(a <= b) and np.any(a < b))


def pareto_mask(F: np.ndarray) -> np.ndarray:
    """Which rows of ``F`` no other row dominates."""
    F = np.asarray(F, dtype=float)
    return np.array([not any(dominates(other, row) for other in F) for row in F], dtype=bool)


def hypervolume(F: np.ndarray, ideal: np.ndarray, nadir: np.ndarray) -> float:
    """The normalised hypervolume of ``F``: 0 when no point beats the nadir, 1 for the
    ideal point itself."""
    F = np.asarray(F, dtype=float).reshape(-1, len(ideal))
    if len(F) == 0:
        return 0.0
    span = np.where(nadir > ideal, nadir - ideal, 1.0)
    scaled = (F - ideal) / span
    inside = scaled[np.all(scaled < 1.0, axis=1)]
    if len(inside) == 0:
        return 0.0
    return float(HV(ref_point=np.ones(len(ideal)))(inside))


def bounds(F: np.ndarray, margin: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """(ideal, nadir) around every point of ``F``: the best value of each objective, and
    the worst plus ``margin`` of the range, so that the worst points still add volume."""
    F = np.asarray(F, dtype=float)
    ideal, worst = F.min(axis=0), F.max(axis=0)
    span = np.where(worst > ideal, worst - ideal, np.maximum(np.abs(worst), 1.0))
    return ideal, worst + margin * span
