"""Folding: how many PE / SIMD lanes each dataflow unit gets.

Three ways to choose it:
- ``fold_to_cycles``: FINN's SetFolding pass for a target cycles-per-frame (one frame
  every ``clock / fps`` cycles): each unit independently takes the smallest
  parallelism that meets the target (an MVAU raises SIMD first while SIMD x weight bits
  stays within ``mvau_wwidth_max``, then PE); when some unit cannot meet it, a second
  pass balances everything to the slowest unit's cycles, as FINN's two-pass relaxation.
- ``fold_to_fit``: raise the slowest unit's parallelism one step at a time while the
  design still fits a resource budget (a board): the fastest design that fits.
- a user's folding by unit or layer name (``read_folding``), checked for divisibility.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import yaml

from qdistill.bounded_yaml import load_yaml
from qdistill.errors import ConfigError
from qdistill.hardware.depthwise import VectorVector
from qdistill.hardware.dot_product import MatrixVector
from qdistill.hardware.units import (
    AP_INT_MAX_WIDTH,
    MVAU_WWIDTH_MAX,
    Fold,
    Pool,
    Resources,
    SlidingWindow,
    Unit,
    divisors,
)

Folding = dict[str, Fold]  # unit name -> its folding


def unfolded(units: list[Unit]) -> Folding:
    return {unit.name: Fold() for unit in units}


def fold_to_cycles(
    units: list[Unit], target_cycles: int, mvau_wwidth_max: int = MVAU_WWIDTH_MAX
) -> Folding:
    """FINN's SetFolding (with two-pass relaxation) for ``target_cycles`` per frame."""
    folding = _fold_all(units, target_cycles, mvau_wwidth_max)
    slowest = max(u.cycles(folding[u.name]) for u in units)
    if slowest > target_cycles:
        folding = _fold_all(units, slowest, mvau_wwidth_max)
    return folding


def fastest_folding(units: list[Unit], mvau_wwidth_max: int = MVAU_WWIDTH_MAX) -> Folding:
    """Every unit at the most parallelism FINN's folding would give it."""
    return _fold_all(units, 1, mvau_wwidth_max)


def uniform_folding(
    units: list[Unit], parallelism: int, mvau_wwidth_max: int = MVAU_WWIDTH_MAX
) -> Folding:
    """Every MVAU at PE = SIMD = ``parallelism`` (the largest divisor of MH / MW not above
    it), the other units folded by FINN's rule to keep up with the slowest MVAU."""
    mvaus = [u for u in units if isinstance(u, MatrixVector)]
    folding = {
        u.name: Fold(_largest_divisor(u.mh, parallelism), _largest_divisor(u.mw, parallelism))
        for u in mvaus
    }
    slowest = max(u.cycles(folding[u.name]) for u in mvaus)
    others = [u for u in units if not isinstance(u, MatrixVector)]
    return {**_fold_all(others, slowest, mvau_wwidth_max), **folding}


def _largest_divisor(n: int, at_most: int) -> int:
    return max(d for d in divisors(n) if d <= at_most)


def _windowed(unit: Unit) -> bool:
    """A pool or VVAU fed by a depthwise window, whose SIMD follows the unit's PE."""
    return isinstance(unit, (Pool, VectorVector)) and bool(unit.window)


def _window_fold(unit: Pool | VectorVector, fold: Fold) -> Fold:
    """The depthwise window's folding for ``unit``'s: SIMD = its PE, and FINN's parallel
    window mode once a VVAU takes several window positions per cycle."""
    return Fold(simd=fold.pe, parallel_window=fold.simd > 1)


def _fold_all(units: list[Unit], target: int, wwidth_max: int) -> Folding:
    folding = {u.name: _fold_unit(u, target, wwidth_max) for u in units}
    windows = {u.name: u for u in units if isinstance(u, SlidingWindow) and u.depthwise}
    for unit in filter(_windowed, units):
        # FINN: the window takes the unit's PE as SIMD; both rise until the window meets
        # the target too.
        window, fold = windows[unit.window], folding[unit.name]
        pe = fold.pe
        for value in [pe] + [d for d in divisors(unit.channels) if d > pe]:
            pe = value
            if window.cycles(_window_fold(unit, Fold(value, fold.simd))) <= target:
                break
        folding[unit.name] = Fold(pe, fold.simd)
        folding[window.name] = _window_fold(unit, folding[unit.name])
    return folding


def _fold_unit(unit: Unit, target: int, wwidth_max: int) -> Fold:
    """One unit's folding as FINN's SetFolding chooses it (the order of its checks kept:
    a SIMD that meets the target is taken before the weight-width cap is looked at)."""
    limits = unit.fold_limits()
    if isinstance(unit, MatrixVector):
        simd = 1
        for value in divisors(unit.mw):
            if unit.cycles(Fold(1, value)) <= target:
                return Fold(1, value)
            if value * unit.weight_bits > wwidth_max:
                break
            simd = value
        pe = 1
        for value in divisors(unit.mh):
            if value * simd * unit.weight_bits > _stream_limit(wwidth_max):
                break
            pe = value
            if unit.cycles(Fold(pe, simd)) <= target:
                break
        return Fold(pe, simd)
    if isinstance(unit, VectorVector):  # PE first, then SIMD once PE is at its maximum
        for pe in divisors(unit.channels):
            if unit.cycles(Fold(pe, 1)) <= target:
                return Fold(pe, 1)
        for simd in divisors(unit.window_size):
            if unit.cycles(Fold(pe, simd)) <= target:
                break
        return Fold(pe, simd)
    if not limits:
        return Fold()
    ((attr, limit),) = limits.items()
    value = 1
    for value in divisors(limit):
        if unit.cycles(Fold(**{attr: value})) <= target:
            return Fold(**{attr: value})
    if isinstance(unit, SlidingWindow) and not unit.depthwise:
        return Fold(simd=value, parallel_window=True)
    return Fold(**{attr: value})


def fold_to_fit(
    units: list[Unit],
    fits: Callable[[Resources], bool],
    mvau_wwidth_max: int = MVAU_WWIDTH_MAX,
) -> Folding:
    """The folding reached by raising the slowest unit's parallelism one step at a time
    while ``fits(total resources)`` holds (starting from PE = SIMD = 1)."""
    folding = unfolded(units)
    by_name = {u.name: u for u in units}
    fed_by = {u.window: u for u in filter(_windowed, units)}
    total = total_resources(units, folding)
    while True:
        slowest = max(units, key=lambda u: u.cycles(folding[u.name]))
        slowest = fed_by.get(slowest.name, slowest)  # a window rises with the unit it feeds
        step = _next_step(slowest, folding[slowest.name], mvau_wwidth_max)
        if step is None:
            return folding
        changes = {slowest.name: step}
        if _windowed(slowest):
            changes[slowest.window] = _window_fold(slowest, step)
        candidate = total
        for name, fold in changes.items():
            unit = by_name[name]
            candidate = candidate - unit.resources(folding[name]) + unit.resources(fold)
        if not fits(candidate):
            return folding
        folding.update(changes)
        total = candidate


def _next_step(unit: Unit, fold: Fold, wwidth_max: int) -> Fold | None:
    limits = unit.fold_limits()
    if isinstance(unit, MatrixVector):
        simd_next = _next_divisor(unit.mw, fold.simd)
        if simd_next and simd_next * unit.weight_bits <= wwidth_max:
            return Fold(fold.pe, simd_next)
        pe_next = _next_divisor(unit.mh, fold.pe)
        if pe_next and pe_next * fold.simd * unit.weight_bits <= _stream_limit(wwidth_max):
            return Fold(pe_next, fold.simd)
        return None
    if isinstance(unit, VectorVector):
        pe_next = _next_divisor(unit.channels, fold.pe)
        if pe_next:
            return Fold(pe_next, fold.simd)
        simd_next = _next_divisor(unit.window_size, fold.simd)
        return Fold(fold.pe, simd_next) if simd_next else None
    if not limits:
        return None
    ((attr, limit),) = limits.items()
    following = _next_divisor(limit, getattr(fold, attr))
    if following:
        return Fold(**{attr: following})
    if isinstance(unit, SlidingWindow) and not unit.depthwise and not fold.parallel_window:
        return Fold(simd=fold.simd, parallel_window=True)
    return None


def _stream_limit(wwidth_max: int) -> int:
    """The widest weight stream (PE x SIMD x bits) a unit may have: FINN's HLS limit, or
    the SIMD cap when a user raised that beyond it (such designs need FINN's RTL MVAU
    or embedded weights in practice)."""
    return max(AP_INT_MAX_WIDTH, wwidth_max)


def _next_divisor(n: int, current: int) -> int | None:
    return next((d for d in divisors(n) if d > current), None)


def total_resources(units: list[Unit], folding: Folding) -> Resources:
    total = Resources()
    for unit in units:
        total = total + unit.resources(folding[unit.name])
    return total


def apply_user_folding(units: list[Unit], folding: Folding, user: dict[str, dict]) -> Folding:
    """``folding`` with the user's entries applied and checked. A key is a unit name
    (``features.1:mvau``) or a layer, which means that layer's matrix-vector or pooling
    unit (its padding, window and thresholds are addressed by unit name)."""
    result = dict(folding)
    for key, values in user.items():
        unit = _addressed_unit(units, key)
        unknown = set(values) - {"PE", "SIMD"}
        if unknown:
            raise ConfigError(
                f"folding for {key!r}: unknown field(s) {sorted(unknown)}; use PE, SIMD"
            )
        if isinstance(unit, SlidingWindow) and unit.depthwise:
            raise ConfigError(
                f"folding: {unit.name} follows its pooling unit; set that unit's PE instead"
            )
        limits = unit.fold_limits()
        if any(k.lower() not in limits for k in values):
            raise ConfigError(
                f"folding for {key!r}: unit {unit.name} ({unit.kind}) takes "
                f"{', '.join(a.upper() for a in limits) or 'no folding'}"
            )
        fold = Fold(**{**vars(result[unit.name]), **{k.lower(): int(v) for k, v in values.items()}})
        try:
            unit.check(fold)
        except ValueError as err:
            raise ConfigError(f"folding: {err}") from None
        result[unit.name] = fold
        if _windowed(unit):
            result[unit.window] = _window_fold(unit, fold)
    return result


def _addressed_unit(units: list[Unit], key: str) -> Unit:
    by_name = next((u for u in units if u.name == key), None)
    if by_name is not None:
        return by_name
    of_layer = [u for u in units if u.layer == key]
    main = [u for u in of_layer if isinstance(u, (MatrixVector, VectorVector, Pool))] or of_layer
    if len(main) != 1:
        known = ", ".join(u.name for u in units)
        raise ConfigError(f"folding names {key!r}, which is no unit or layer; units: {known}")
    return main[0]


def read_folding(path: str | Path) -> dict[str, dict]:
    """A folding file (JSON or YAML): ``{unit_or_layer: {PE: n, SIMD: m}}``."""
    path = Path(path)
    try:
        data = (
            json.loads(path.read_text())
            if path.suffix == ".json"
            else load_yaml(path, "folding file")
        )
    except (OSError, ValueError, yaml.YAMLError) as err:
        raise ConfigError(f"folding file {path} is unreadable ({err})") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise ConfigError(f"folding file {path} must map unit or layer names to {{PE: n, SIMD: m}}")
    return data
