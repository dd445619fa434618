"""A recipe: the ordered stages a student goes through, parsed and checked once.

In YAML each entry is one stage, ``{name: {its settings}}`` (or just ``name`` when the
defaults do), e.g.::

    recipe:
      - distill: {alpha: 0.5, train: {epochs: 30}}
      - prune: {ratio: 0.5}
      - finetune: {epochs: 5}
      - quantize: {mode: qat, bits: w4a4, train: {epochs: 10}}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from qdistill.config import located_errors
from qdistill.distill import DistillConfig
from qdistill.experiment.stages import STAGES, ModelKind, StageConfig, definition_of
from qdistill.experiment.stages.half import HalfStage
from qdistill.experiment.stages.mixed_precision import MixedPrecisionStage
from qdistill.experiment.stages.quantize import QuantizeStage
from qdistill.experiment.stages.training import DistillStage, FinetuneStage
from qdistill.quant import QuantPlan

Recipe = tuple[StageConfig, ...]


def _first_problem(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def parse_stage(entry: Any) -> StageConfig:
    """One recipe entry: ``{stage name: settings}``, or a stage name alone."""
    if isinstance(entry, StageConfig):
        return entry
    if isinstance(entry, str):
        name, settings = entry, None
    elif isinstance(entry, dict) and len(entry) == 1:
        ((name, settings),) = entry.items()
    else:
        raise ValueError(
            f"recipe entry {entry!r} must be one stage, {{name: {{settings}}}}, e.g. "
            "{quantize: {mode: qat, bits: w4a4}}"
        )
    with located_errors():
        definition = STAGES.get(name)
    try:
        return definition.config.model_validate(settings or {})
    except ValidationError as err:
        raise ValueError(f"{name}: {_first_problem(err)}") from None


def parse_recipe(entries: Sequence[Any]) -> Recipe:
    """A recipe's stages from their YAML entries, checked to follow each other."""
    stages = []
    for index, entry in enumerate(entries):
        try:
            stages.append(parse_stage(entry))
        except ValueError as err:
            raise ValueError(f"recipe.{index}: {err}") from None
    check_recipe(stages)
    return tuple(stages)


def check_recipe(stages: Sequence[StageConfig]) -> None:
    """Refuse a recipe whose stages cannot follow each other: each stage must accept the
    kind of model the ones before leave (float, quantized, half), and a plan chosen by
    one stage must be applied by a later one."""
    kind: ModelKind = "float"
    after = "the start"
    plan_chosen = False
    for config in stages:
        definition = definition_of(config)
        if kind not in definition.accepts:
            needs = " or ".join(sorted(definition.accepts))
            raise ValueError(
                f"stage {config.stage!r} needs a {needs} model, but after {after} it is {kind}"
            )
        if config.needs_plan and not plan_chosen:
            raise ValueError(
                f"stage {config.stage!r} has no plan: give 'bits', or put a mixed-precision "
                "stage before it"
            )
        if config.chooses_plan and plan_chosen:
            raise ValueError("two mixed-precision stages in a row; apply the first plan")
        plan_chosen = (plan_chosen and not config.needs_plan) or config.chooses_plan
        kind = definition.produces or kind
        after = repr(config.stage)
    if plan_chosen:
        raise ValueError("the plan of the mixed-precision stage is never applied; add a quantize")


def recipe_title(stages: Sequence[StageConfig]) -> str:
    """``distill > prune(0.5) > quantize(qat)``; ``float`` for no stage at all."""
    return " > ".join(config.title for config in stages) or "float"


def recipe_to_config(stages: Sequence[StageConfig]) -> list[dict[str, Any]]:
    """The recipe as YAML would write it, every value explicit."""
    return [{config.stage: config.model_dump(mode="json")} for config in stages]


@dataclass(frozen=True)
class RunLabels:
    """How reports name what a recipe did: its bit setting (``w4a4``, ``alloc``,
    ``fp16``, ``float``), the default rule's weight/activation widths (None when mixed),
    the distillation alpha/temperature and QKD's phases."""

    bits: str = "float"
    w_bits: int | None = 32
    a_bits: int | None = 32
    alpha: float | None = None
    temperature: float | None = None
    phases: str | None = None


def _widths(plan: QuantPlan) -> tuple[int | None, int | None]:
    """(weight bits, activation bits) of a plan's default rule ('*'), None without one."""
    defaults = [spec for pattern, spec in plan.rules if pattern == "*"]
    if not defaults:
        return None, None
    spec = defaults[-1]
    if spec is None:
        return 32, 32
    return (spec.weight.bits if spec.weight else 32), (spec.act.bits if spec.act else 32)


def distillation_of(config: StageConfig) -> DistillConfig | None:
    """The distillation settings a stage trains with, if it distils."""
    if isinstance(config, DistillStage):
        return config
    if isinstance(config, FinetuneStage):
        return config.distill
    if isinstance(config, QuantizeStage):
        return config.distillation
    return None


def labels_of(stages: Sequence[StageConfig]) -> RunLabels:
    labels: dict[str, Any] = {}
    allocation = next((s for s in stages if isinstance(s, MixedPrecisionStage)), None)
    for config in stages:
        if isinstance(config, QuantizeStage):
            if config.bits is None:
                labels.update(bits=allocation.label, w_bits=None, a_bits=None)
            else:
                w_bits, a_bits = _widths(config.bits)
                labels.update(bits=config.bits.short, w_bits=w_bits, a_bits=a_bits)
            if config.mode == "qkd":
                labels["phases"] = config.phases.label
        elif isinstance(config, HalfStage):
            width = None if config.keep_fp32 else 16
            labels.update(bits=config.plan.label, w_bits=width, a_bits=width)
        distillation = distillation_of(config)
        if distillation is not None and "alpha" not in labels:
            labels["alpha"] = distillation.alpha
            labels["temperature"] = (
                distillation.temperature if distillation.uses_temperature else None
            )
    return RunLabels(**labels)
