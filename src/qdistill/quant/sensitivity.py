"""Per-stage (or per-layer) sensitivity to quantization, and a mixed-precision allocator.

Sensitivity: quantize one unit (a model stage such as ``feature_extraction``, or one
layer) at a bit width, keep everything else float, calibrate, and measure how much a
quality score drops. Allocation: start from a low-bit plan and give the high bit width
to the units whose quantization hurt most, while the model stays within a size budget.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any, Literal

from torch import nn

from qdistill.errors import ConfigError
from qdistill.quant.calibrate import calibrate
from qdistill.quant.plan import QuantPlan
from qdistill.quant.prepare import quantizable_layers, quantize

Granularity = Literal["stages", "layers"]
Score = Callable[[nn.Module], float]


@dataclass(frozen=True)
class Sensitivity:
    unit: str  # a stage (module path) or a layer name: a plan pattern
    layers: int  # quantizable layers in the unit
    params: int
    score: float  # quality with only this unit quantized
    drop: float  # float score minus score (higher = more sensitive)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _in_unit(layer: str, unit: str) -> bool:
    return layer == unit or layer.startswith(f"{unit}.")


def sensitivity_units(model: nn.Module, granularity: Granularity = "stages") -> list[str]:
    """The units to probe: the model's ``stages`` (or its top-level children) that hold
    quantizable layers, or every quantizable layer."""
    layer_names = [name for name, _ in quantizable_layers(model)]
    if granularity == "layers":
        return layer_names
    if granularity != "stages":
        raise ConfigError(f"granularity must be 'stages' or 'layers', got {granularity!r}")
    stages = getattr(model, "stages", None) or [name for name, _ in model.named_children()]
    return [s for s in stages if any(_in_unit(n, s) for n in layer_names)]


def _unit_params(model: nn.Module, unit: str) -> tuple[int, int]:
    layers = [m for n, m in quantizable_layers(model) if n == unit or n.startswith(f"{unit}.")]
    return len(layers), sum(p.numel() for m in layers for p in m.parameters())


def measure_sensitivity(
    model: nn.Module,
    bits: Any,
    score: Score,
    calibration: Iterable,
    calibration_batches: int = 8,
    granularity: Granularity = "stages",
    higher_is_better: bool = True,
) -> tuple[float, list[Sensitivity]]:
    """(float score, one Sensitivity per unit, most sensitive first) of a float ``model``
    with one unit at a time quantized to ``bits`` by post-training calibration."""
    baseline = score(model)
    results = []
    for unit in sensitivity_units(model, granularity):
        probe = quantize(copy.deepcopy(model), {unit: bits})
        calibrate(probe, calibration, calibration_batches)
        value = score(probe)
        drop = baseline - value if higher_is_better else value - baseline
        layers, params = _unit_params(model, unit)
        results.append(Sensitivity(unit, layers, params, value, drop))
    if not results:
        raise ConfigError("the model has no quantizable layer to probe")
    return baseline, sorted(results, key=lambda s: s.drop, reverse=True)


def plan_size_bytes(model: nn.Module, plan: Any) -> int:
    """Deployed size of ``model`` under ``plan`` (weights at their widths, scales, biases)."""
    from qdistill.hardware.size import model_size

    return model_size(quantize(model, plan)).total_bytes


def allocate_bits(
    model: nn.Module,
    sensitivities: list[Sensitivity],
    low: Any,
    high: Any,
    budget_bytes: int,
) -> dict[str, Any]:
    """A plan: ``low`` everywhere, ``high`` for the most sensitive units that fit.

    Units are upgraded greedily by measured drop per extra byte (so a small, sensitive
    stage comes before a large one), skipping any upgrade that would exceed
    ``budget_bytes``; units whose drop is not positive are never upgraded.
    """
    plan: dict[str, Any] = {"*": low}
    base = plan_size_bytes(model, plan)
    if base > budget_bytes:
        raise ConfigError(
            f"even the all-{low} plan ({base} bytes) exceeds the budget of {budget_bytes} "
            "bytes; raise the budget or lower the low bit width"
        )
    candidates = [s for s in sensitivities if s.drop > 0]
    extra = {s.unit: plan_size_bytes(model, {"*": low, s.unit: high}) - base for s in candidates}
    ranked = sorted(candidates, key=lambda s: s.drop / max(extra[s.unit], 1), reverse=True)
    for s in ranked:
        trial = {**plan, s.unit: high}
        if plan_size_bytes(model, trial) <= budget_bytes:
            plan = trial
    return plan


def budget_bytes_of(model: nn.Module, budget: int | str) -> int:
    """A size budget in bytes, or the size of a uniform plan such as ``w6a6``."""
    if isinstance(budget, int):
        if budget < 1:
            raise ConfigError(f"size budget must be positive bytes, got {budget}")
        return budget
    return plan_size_bytes(model, QuantPlan.from_config(budget))
