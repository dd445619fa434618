"""estimate_dataflow(): cycles, throughput, latency and FPGA resources of a quantized
model as a FINN-style dataflow accelerator, folded to a target or to fit a board."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from torch import nn

from qdistill.errors import ConfigError
from qdistill.hardware.dataflow import DataflowError, dataflow_units
from qdistill.hardware.dot_product import MatrixVector
from qdistill.hardware.folding import (
    Folding,
    apply_user_folding,
    fastest_folding,
    fold_to_cycles,
    fold_to_fit,
    total_resources,
    unfolded,
    uniform_folding,
)
from qdistill.hardware.units import MVAU_WWIDTH_MAX, Fold, Resources, Unit


@dataclass(frozen=True)
class DataflowTarget:
    """What to fold for: a throughput (``fps``); or the fastest design that fits
    ``fit_within`` (resources, e.g. a board's times a utilisation cap); or ``uniform``
    parallelism (every MVAU at PE = SIMD = n, or the largest divisor below); none of
    them means PE = SIMD = 1. ``folding`` overrides units or layers by name."""

    clock_mhz: float = 100.0
    fps: float | None = None
    fit_within: Resources | None = None
    uniform: int | None = None
    folding: dict[str, dict] = field(default_factory=dict)
    mvau_wwidth_max: int = MVAU_WWIDTH_MAX

    def __post_init__(self) -> None:
        if not self.clock_mhz > 0:
            raise ConfigError(f"clock must be positive MHz, got {self.clock_mhz}")
        if self.fps is not None and not self.fps > 0:
            raise ConfigError(f"target fps must be positive, got {self.fps}")
        if self.mvau_wwidth_max < 1:
            raise ConfigError(f"mvau_wwidth_max must be at least 1, got {self.mvau_wwidth_max}")
        if self.uniform is not None and self.uniform < 1:
            raise ConfigError(f"uniform parallelism must be at least 1, got {self.uniform}")
        chosen = [self.fps is not None, self.fit_within is not None, self.uniform is not None]
        if sum(chosen) > 1:
            raise ConfigError("choose one of a target fps, a board to fit or uniform folding")

    @property
    def clock_hz(self) -> float:
        return self.clock_mhz * 1e6


@dataclass
class UnitEstimate:
    name: str
    layer: str
    kind: str
    pe: int
    simd: int
    cycles: int
    resources: Resources
    details: dict

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "layer": self.layer,
            "kind": self.kind,
            "pe": self.pe,
            "simd": self.simd,
            "cycles": self.cycles,
            **self.resources.to_dict(),
            "details": self.details,
        }


@dataclass
class DataflowEstimate:
    clock_mhz: float
    target_fps: float | None
    units: list[UnitEstimate]
    total: Resources
    max_cycles: int
    bottleneck: str
    latency_cycles: int  # the pipeline's fill: the longest path through all units
    max_fps: float  # with every unit at its maximal folding
    max_fps_bottleneck: str
    max_fps_width_capped: bool = False  # that unit's SIMD is held back by mvau_wwidth_max

    @property
    def fps(self) -> float:
        return self.clock_mhz * 1e6 / self.max_cycles

    @property
    def latency_ms(self) -> float:
        return self.latency_cycles / (self.clock_mhz * 1e3)

    @property
    def target_met(self) -> bool:
        return self.target_fps is None or self.fps >= self.target_fps

    def to_dict(self) -> dict:
        return {
            "clock_mhz": self.clock_mhz,
            "target_fps": self.target_fps,
            "fps": self.fps,
            "latency_ms": self.latency_ms,
            "max_cycles": self.max_cycles,
            "latency_cycles": self.latency_cycles,
            "bottleneck": self.bottleneck,
            "max_fps": self.max_fps,
            "max_fps_bottleneck": self.max_fps_bottleneck,
            "max_fps_width_capped": self.max_fps_width_capped,
            "total": self.total.to_dict(),
            "units": [u.to_dict() for u in self.units],
        }


def estimate_dataflow(
    model: nn.Module, input_shape: tuple[int, ...], target: DataflowTarget | None = None
) -> DataflowEstimate:
    """The dataflow estimate of ``model`` for inputs of ``input_shape`` (no batch dim)."""
    target = target or DataflowTarget()
    units = dataflow_units(model, tuple(input_shape))
    return estimate_units(units, target)


def estimate_units(units: list[Unit], target: DataflowTarget) -> DataflowEstimate:
    folding = _choose_folding(units, target)
    folding = apply_user_folding(units, folding, target.folding)
    fastest = fastest_folding(units, target.mvau_wwidth_max)
    cycles = {u.name: u.cycles(folding[u.name]) for u in units}
    bottleneck = max(units, key=lambda u: cycles[u.name])
    limit = max(units, key=lambda u: u.cycles(fastest[u.name]))
    return DataflowEstimate(
        clock_mhz=target.clock_mhz,
        target_fps=target.fps,
        units=[_unit_estimate(u, folding[u.name]) for u in units],
        total=total_resources(units, folding),
        max_cycles=cycles[bottleneck.name],
        bottleneck=bottleneck.name,
        latency_cycles=_longest_path(units, cycles),
        max_fps=target.clock_hz / limit.cycles(fastest[limit.name]),
        max_fps_bottleneck=limit.name,
        max_fps_width_capped=isinstance(limit, MatrixVector)
        and fastest[limit.name].simd < limit.mw,
    )


def _choose_folding(units: list[Unit], target: DataflowTarget) -> Folding:
    if target.fps is not None:
        return fold_to_cycles(
            units, max(1, math.floor(target.clock_hz / target.fps)), target.mvau_wwidth_max
        )
    if target.fit_within is not None:
        budget = target.fit_within
        return fold_to_fit(units, budget.holds, target.mvau_wwidth_max)
    if target.uniform is not None:
        return uniform_folding(units, target.uniform, target.mvau_wwidth_max)
    return unfolded(units)


def _unit_estimate(unit: Unit, fold: Fold) -> UnitEstimate:
    return UnitEstimate(
        name=unit.name,
        layer=unit.layer,
        kind=unit.kind,
        pe=fold.pe,
        simd=fold.simd,
        cycles=unit.cycles(fold),
        resources=unit.resources(fold),
        details=unit.describe(),
    )


def _longest_path(units: list[Unit], cycles: dict[str, int]) -> int:
    finish: dict[str, int] = {"": 0}
    for unit in units:  # units are in topological order
        finish[unit.name] = max(finish.get(i, 0) for i in unit.inputs or [""]) + cycles[unit.name]
    return max(finish.values())


def check_reachable(estimate: DataflowEstimate) -> None:
    """Raise if the estimate misses its target FPS, saying what the maximum is."""
    if estimate.target_met:
        return
    raise DataflowError(
        f"{estimate.target_fps:g} FPS is unreachable at {estimate.clock_mhz:g} MHz: the "
        f"fastest folding reaches {estimate.max_fps:,.0f} FPS, limited by "
        f"{estimate.max_fps_bottleneck}; lower --fps, raise the clock"
        + (
            ", raise --mvau-wwidth-max (FINN's cap on SIMD x weight bits holds its SIMD back)"
            if estimate.max_fps_width_capped
            else " or shrink that layer"
        )
    )
