"""Per-stage (or per-layer) sensitivity to quantization, and a mixed-precision allocator.

Sensitivity: quantize one unit (a model stage such as ``feature_extraction``, or one
layer) at a bit width, keep everything else float, calibrate, and measure how much a
quality score drops. Allocation: start from a low-bit plan and give higher bit widths to
the units where they recover the most quality per byte, while the model stays within a
size budget.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from torch import nn

from qdistill.errors import ConfigError
from qdistill.quant.calibrate import calibrate
from qdistill.quant.plan import QuantPlan
from qdistill.quant.prepare import quantizable_layers, quantize
from qdistill.quant.size import model_size
from qdistill.quant.unpacked import unpack_layers

Granularity = Literal["stages", "layers"]
Score = Callable[[nn.Module], float]


@dataclass(frozen=True)
class Sensitivity:
    unit: str  # a stage (module path) or a layer name: a plan pattern
    layers: int  # quantizable layers in the unit
    params: int
    score: float  # quality with only this unit quantized
    drop: float  # float score minus score (higher = more sensitive)


@dataclass(frozen=True)
class SensitivityProbe:
    """Each unit's drop of the validation ``metric`` from the float model's score, when
    quantized alone at each probed level (by label), most sensitive first."""

    metric: str
    float_score: float
    levels: dict[str, list[Sensitivity]]


@dataclass(frozen=True)
class Allocation(SensitivityProbe):
    """A probe and the plan chosen from it within ``budget_bytes``."""

    probe: str  # the label of the level that stands for the lowest one
    budget_bytes: int
    plan: QuantPlan

    @property
    def units(self) -> list[Sensitivity]:
        """Each unit at the first probed level, most sensitive first."""
        return self.levels[self.probe]

    def to_dict(self) -> dict[str, Any]:
        levels = {label: [asdict(s) for s in units] for label, units in self.levels.items()}
        return {**asdict(self), "levels": levels, "plan": self.plan.to_config()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Allocation:
        levels = {
            label: [Sensitivity(**unit) for unit in units]
            for label, units in data["levels"].items()
        }
        return cls(
            metric=data["metric"],
            float_score=data["float_score"],
            levels=levels,
            probe=data["probe"],
            budget_bytes=data["budget_bytes"],
            plan=QuantPlan.from_config(data["plan"]),
        )


def _in_unit(layer: str, unit: str) -> bool:
    return layer == unit or layer.startswith(f"{unit}.")


def _layers_quantize_sees(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, layer) of every layer quantize() quantizes: attention and LSTM/GRU layers
    rebuilt from Linears (on a copy), so their projections are units of their own."""
    return quantizable_layers(unpack_layers(copy.deepcopy(model)))


def sensitivity_units(model: nn.Module, granularity: Granularity = "stages") -> list[str]:
    """The units to probe: the model's ``stages`` (or its top-level children) that hold
    quantizable layers, or every quantizable layer."""
    return _units(model, [name for name, _ in _layers_quantize_sees(model)], granularity)


def _units(model: nn.Module, layer_names: list[str], granularity: Granularity) -> list[str]:
    if granularity == "layers":
        return layer_names
    if granularity != "stages":
        raise ConfigError(f"granularity must be 'stages' or 'layers', got {granularity!r}")
    stages = getattr(model, "stages", None) or [name for name, _ in model.named_children()]
    return [s for s in stages if any(_in_unit(n, s) for n in layer_names)]


def _unit_params(layers: list[tuple[str, nn.Module]], unit: str) -> tuple[int, int]:
    inside = [m for n, m in layers if _in_unit(n, unit)]
    return len(inside), sum(p.numel() for m in inside for p in m.parameters())


def measure_sensitivity(
    model: nn.Module,
    bits: Any,
    score: Score,
    calibration: Iterable,
    calibration_batches: int = 8,
    granularity: Granularity = "stages",
    higher_is_better: bool = True,
    baseline: float | None = None,
) -> tuple[float, list[Sensitivity]]:
    """(float score, one Sensitivity per unit, most sensitive first) of a float ``model``
    with one unit at a time quantized to ``bits`` by post-training calibration.
    ``baseline``: the float model's score when already known (probing several widths)."""
    if baseline is None:
        baseline = score(model)
    results = []
    layers = _layers_quantize_sees(model)
    for unit in _units(model, [name for name, _ in layers], granularity):
        probe = quantize(copy.deepcopy(model), {unit: bits})
        calibrate(probe, calibration, calibration_batches)
        value = score(probe)
        drop = baseline - value if higher_is_better else value - baseline
        count, params = _unit_params(layers, unit)
        results.append(Sensitivity(unit, count, params, value, drop))
    if not results:
        raise ConfigError("the model has no quantizable layer to probe")
    return baseline, sorted(results, key=lambda s: s.drop, reverse=True)


def plan_size_bytes(model: nn.Module, plan: Any) -> int:
    """Deployed size of ``model`` under ``plan`` (weights at their widths, scales, biases)."""
    return model_size(quantize(model, plan)).total_bytes


def allocate_bits(
    model: nn.Module,
    sensitivities: Mapping[str, list[Sensitivity]],
    levels: Sequence[str],
    budget_bytes: int,
    specs: Mapping[str, Any] | None = None,
    spend_leftover: bool = False,
) -> dict[str, Any]:
    """A plan: the lowest of ``levels`` (uniform specs, low to high) everywhere, and
    higher levels for the units where they buy the most quality per extra byte.

    ``levels`` are labels such as ``w4a4``; ``specs`` maps a label to its full layer spec
    (e.g. with learned ranges) where the label alone does not say it.
    ``sensitivities[level]`` holds each unit's measured drop when quantized alone at that
    level; a level without measurements counts as lossless (e.g. 8 bits when only the
    low width was probed). Greedy: repeatedly apply the upgrade of one unit to a higher
    level with the largest drop reduction per extra byte that keeps the plan within
    ``budget_bytes``, until no upgrade reduces a drop and fits. With ``spend_leftover``
    the rest of the budget then goes, one level at a time, to the unit that is most
    sensitive at its current level: post-training drops at 2-4 bits are large and noisy
    (a stage can measure worse at 3 bits than at 2), while after QAT more bits help.
    """
    spec_of = {level: (specs or {}).get(level, level) for level in levels}
    low = levels[0]
    plan: dict[str, Any] = {"*": spec_of[low]}
    size = plan_size_bytes(model, plan)
    if size > budget_bytes:
        raise ConfigError(
            f"even the all-{low} plan ({size} bytes) exceeds the budget of {budget_bytes} "
            "bytes; raise the budget or lower the low bit width"
        )
    drops = {level: {s.unit: s.drop for s in sensitivities.get(level, [])} for level in levels}
    units = [s.unit for s in sensitivities.get(low, [])]
    # Units are disjoint sets of layers and a layer's size depends only on its own spec,
    # so each unit's extra bytes per level are measured once and add up.
    extra = {
        unit: [0]
        + [plan_size_bytes(model, {**plan, unit: spec_of[level]}) - size for level in levels[1:]]
        for unit in units
    }
    current = dict.fromkeys(units, 0)  # index into levels
    while True:
        best: tuple[float, str, int, int] | None = None
        for unit in units:
            here = drops[levels[current[unit]]].get(unit, 0.0)
            for index in range(current[unit] + 1, len(levels)):
                gain = here - drops[levels[index]].get(unit, 0.0)
                added = extra[unit][index] - extra[unit][current[unit]]
                if gain <= 0 or size + added > budget_bytes:
                    continue
                ratio = gain / max(added, 1)
                if best is None or ratio > best[0]:
                    best = (ratio, unit, index, size + added)
        if best is None and spend_leftover:
            for unit in units:
                index = current[unit] + 1
                if index < len(levels):
                    added = extra[unit][index] - extra[unit][current[unit]]
                    rank = drops[levels[current[unit]]].get(unit, 0.0)
                    if size + added <= budget_bytes and (best is None or rank > best[0]):
                        best = (rank, unit, index, size + added)
        if best is None:
            return plan
        _, unit, index, size = best
        current[unit] = index
        plan[unit] = spec_of[levels[index]]


def budget_bytes_of(model: nn.Module, budget: int | str) -> int:
    """A size budget in bytes, or the size of a uniform plan such as ``w6a6``."""
    if isinstance(budget, int):
        if budget < 1:
            raise ConfigError(f"size budget must be positive bytes, got {budget}")
        return budget
    return plan_size_bytes(model, QuantPlan.from_config(budget))
