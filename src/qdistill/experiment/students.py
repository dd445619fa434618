"""A student as the YAML writes it, and its variants: one typed recipe per sweep point.

A student is either a ``recipe`` of stages (with ``sweep`` naming recipe fields to
sweep, e.g. ``{quantize.bits: [w8a8, w4a4], prune.ratio: [0.25, 0.5]}``) or a
``method`` (float, ptq, qat, qkd, half), sugar that expands to a recipe: ``bits``
lists and ``distill.alpha``/``distill.temperature`` lists are swept. Every variant's
recipe is validated when the experiment is loaded.
"""

from __future__ import annotations

import copy
import itertools
import re
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator

from qdistill.config import FileName, StrictConfig, located_errors
from qdistill.distill import DistillConfig, QKDPhases
from qdistill.errors import ConfigError
from qdistill.experiment.recipe import (
    Recipe,
    RunLabels,
    labels_of,
    parse_recipe,
    recipe_to_config,
)
from qdistill.experiment.stages import STAGES
from qdistill.experiment.stages.equalize import EqualizeStage
from qdistill.experiment.stages.half import HalfStage
from qdistill.experiment.stages.mixed_precision import MixedPrecisionStage, number_repeats
from qdistill.experiment.stages.quantize import QuantizeStage
from qdistill.experiment.stages.training import DistillStage, TrainStage
from qdistill.models import ModelConfig
from qdistill.quant import QuantPlan
from qdistill.train import TrainConfig

BitsValue = str | dict[str, Any]  # a plan: 'w4a4' or {pattern: spec}, or {allocate: {...}}
Method = Literal["float", "ptq", "qat", "qkd", "half"]
# Keys outside a method student's dump in its identity: ``compare_to`` changes only the
# report; the others came after runs were recorded and must not change their ids
# (``equalize`` enters the identity on its own, when given).
_LATER_KEYS = {"compare_to", "equalize", "recipe", "sweep"}


class DistillSweep(DistillConfig):
    """Distillation settings as YAML writes them: ``alpha`` and ``temperature`` lists are
    swept, one run per combination."""

    alpha: float | list[float] = 0.7
    temperature: float | list[float] = 8.0

    @field_validator("alpha")
    @classmethod
    def _alpha_range(cls, value: float | list[float]) -> float | list[float]:
        values = value if isinstance(value, list) else [value]
        if not values or any(not 0.0 <= a <= 1.0 for a in values):
            raise ValueError(f"alpha must be in [0, 1], got {value}")
        return value

    @field_validator("temperature")
    @classmethod
    def _temperature_positive(cls, value: float | list[float]) -> float | list[float]:
        values = value if isinstance(value, list) else [value]
        if not values or any(t <= 0 for t in values):
            raise ValueError(f"temperature must be positive, got {value}")
        return value

    @property
    def swept(self) -> list[str]:
        return [k for k in ("alpha", "temperature") if isinstance(getattr(self, k), list)]

    def points(self) -> list[DistillConfig]:
        """One single-valued config per (alpha, temperature) combination."""
        alphas = self.alpha if isinstance(self.alpha, list) else [self.alpha]
        temperatures = (
            self.temperature if isinstance(self.temperature, list) else [self.temperature]
        )
        single = self.model_dump(exclude={"alpha", "temperature"})
        return [
            DistillConfig(**single, alpha=a, temperature=t)
            for a, t in itertools.product(alphas, temperatures)
        ]


@dataclass(frozen=True)
class Variant:
    """One point of a student's sweep: its name parts, recipe and identity (everything
    that determines its result, hashed into run ids and recorded)."""

    suffix: tuple[str, ...]
    stages: Recipe
    identity: dict[str, Any]
    labels: RunLabels


def allocation_of(bits: Any) -> MixedPrecisionStage | None:
    """The settings of a ``bits: {allocate: {...}}`` entry, else None."""
    if isinstance(bits, dict) and "allocate" in bits:
        if set(bits) != {"allocate"}:
            raise ValueError("a bits entry with 'allocate' takes no other keys")
        return MixedPrecisionStage.model_validate(bits["allocate"] or {})
    return None


def _sweep_label(path: str, value: Any, labels: RunLabels) -> str:
    key = path.rsplit(".", 1)[-1]
    if key == "bits":
        return labels.bits
    text = f"{key}{value:g}" if isinstance(value, int | float) else f"{key}-{value}"
    return re.sub(r"[^A-Za-z0-9._=+-]", "-", text)


def _set_path(recipe: list[Any], path: str, value: Any) -> None:
    """Set ``stage.field[.sub...]`` (stage: a name, its first entry, or a 0-based index)."""
    head, *keys = path.split(".")
    names = [next(iter(e)) if isinstance(e, dict) else e for e in recipe]
    index = int(head) if head.isdigit() else names.index(head) if head in names else None
    if index is None or index >= len(recipe) or not keys:
        raise ValueError(
            f"sweep path {path!r} must be <stage name or index>.<key>; stages: {names}"
        )
    entry = recipe[index]
    name = names[index]
    node = entry.get(name) if isinstance(entry, dict) else None
    recipe[index] = {name: node if isinstance(node, dict) else {}}
    node = recipe[index][name]
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = value


class StudentConfig(StrictConfig):
    name: FileName
    method: Method | None = None
    recipe: list[Any] | None = None  # the stages, instead of a method
    sweep: dict[str, list[Any]] | None = None  # recipe fields to sweep
    model: ModelConfig | None = None
    init: Literal["pretrained", "scratch"] = "pretrained"
    bits: BitsValue | list[BitsValue] | None = None
    fold_bn: bool = False
    calibration_batches: int = Field(8, ge=1)
    train: TrainConfig | None = None  # qat and float students
    pretrain: TrainConfig | None = None  # float training of a different architecture
    distill: DistillSweep | None = None  # learn from the teacher (float, qat, qkd)
    phases: QKDPhases | None = None  # qkd only
    compare_to: str | None = None  # report this student's gain over another student
    half: HalfStage | None = None  # method half only (default: all float16)
    equalize: EqualizeStage | None = None  # ptq, qat, qkd: equalize ranges first
    _variants: tuple[Variant, ...] = PrivateAttr(default=())

    @field_validator("equalize", mode="before")
    @classmethod
    def _equalize_switch(cls, value: Any) -> Any:
        if value is True:
            return {}
        return None if value is False else value

    @field_validator("bits")
    @classmethod
    def _parse_bits(cls, value: Any) -> Any:
        for entry in value if isinstance(value, list) else [value]:
            if entry is not None and allocation_of(entry) is None:
                with located_errors():
                    QuantPlan.from_config(entry)
        if isinstance(value, list) and not value:
            raise ValueError("bits list is empty")
        return value

    @model_validator(mode="after")
    def _expand(self) -> StudentConfig:
        if (self.method is None) == (self.recipe is None):
            raise ValueError("give either 'method' (float, ptq, qat, qkd, half) or a 'recipe'")
        if self.recipe is not None:
            self._check_recipe_keys()
            self._variants = tuple(self._recipe_variants())
        else:
            if self.sweep is not None:
                raise ValueError("'sweep' belongs to a recipe; method students sweep 'bits'")
            self._check_method_keys()
            self._variants = tuple(self._method_variants())
        return self

    @property
    def variants(self) -> tuple[Variant, ...]:
        return self._variants

    @property
    def method_label(self) -> str:
        """The method the student was written with, or ``recipe``."""
        return self.method or "recipe"

    # -- recipe students ------------------------------------------------------------------
    def _check_recipe_keys(self) -> None:
        given = self.model_fields_set & {
            "bits", "fold_bn", "calibration_batches", "train", "distill", "phases", "half",
            "equalize",
        }  # fmt: skip
        if given:
            raise ValueError(f"{sorted(given)} belong to method students; put them in the recipe")

    def _recipe_variants(self):
        for index, entry in enumerate(self.recipe):
            name = next(iter(entry)) if isinstance(entry, dict) and len(entry) == 1 else entry
            try:  # an unknown stage is named before any sweep path is looked up
                STAGES.get(name) if isinstance(name, str) else None
            except ConfigError as err:
                raise ValueError(f"recipe.{index}: {err}") from None
        axes = self.sweep or {}
        for path, values in axes.items():
            if not values:
                raise ValueError(f"sweep {path!r} has no values")
        for point in itertools.product(*axes.values()):
            raw = copy.deepcopy(self.recipe)
            for path, value in zip(axes, point, strict=True):
                _set_path(raw, path, value)
            stages = parse_recipe(raw)
            identity = {
                **self.model_dump(mode="json", include={"name", "model", "init", "pretrain"}),
                "recipe": recipe_to_config(stages),
            }
            labels = labels_of(stages)
            suffix = tuple(_sweep_label(p, v, labels) for p, v in zip(axes, point, strict=True))
            yield Variant(suffix, stages, identity, labels)

    # -- method students (sugar) ----------------------------------------------------------
    def _check_method_keys(self) -> None:
        method = self.method
        if method in ("ptq", "qat") and self.bits is None:
            raise ValueError(f"method {method} needs 'bits' (e.g. w4a4)")
        if method == "float" and self.bits is not None:
            raise ValueError("method float takes no 'bits'; use ptq or qat to quantize")
        if method == "ptq" and self.train is not None:
            raise ValueError("method ptq does not train; remove 'train' or use qat")
        if self.init == "scratch" and method == "ptq":
            raise ValueError("ptq of random weights is meaningless; use init: pretrained")
        if method == "ptq" and self.distill is not None:
            raise ValueError("method ptq does not train, so it cannot distil; use qat or qkd")
        if method == "half":
            extra = [k for k in ("bits", "train", "distill") if getattr(self, k) is not None]
            if extra or self.init == "scratch":
                raise ValueError(
                    "method half converts the trained float model without training; remove "
                    + (", ".join(repr(k) for k in extra) or "'init: scratch'")
                )
        elif self.half is not None:
            raise ValueError(f"'half' belongs to method half, not {method}")
        if self.equalize is not None and method not in ("ptq", "qat", "qkd"):
            raise ValueError(f"'equalize' prepares quantization; method {method} has none")
        if method == "qkd":
            if self.phases is None:
                raise ValueError("method qkd needs 'phases' (self_study, co_study, tutoring)")
            if self.train is not None:
                raise ValueError("method qkd trains per phase; move 'train' under 'phases'")
        elif self.phases is not None:
            raise ValueError(f"'phases' belong to method qkd, not {method}")

    @property
    def distillation(self) -> DistillSweep | None:
        """The distillation settings in force: QKD's co-study and tutoring distil with the
        defaults when none are given; a self-study-only QKD does not distil at all."""
        if self.method == "qkd" and not (self.phases.co_study or self.phases.tutoring):
            return None
        if self.distill is None and self.method == "qkd":
            return DistillSweep()
        return self.distill

    def _method_variants(self):
        bits_list = list(self.bits) if isinstance(self.bits, list) else [self.bits]
        distillation = self.distillation
        points = distillation.points() if distillation else [None]
        swept = distillation.swept if distillation else []
        written = self.model_dump(mode="json", exclude=_LATER_KEYS)
        recipes = [[self._method_stages(bits, point) for point in points] for bits in bits_list]
        labels = [[labels_of(stages) for stages in row] for row in recipes]
        names = number_repeats([row[0].bits for row in labels])  # w4a4-1, w4a4-2: same widths
        for bits, name, row, row_labels in zip(bits_list, names, recipes, labels, strict=True):
            for point, stages, run_labels in zip(points, row, row_labels, strict=True):
                suffix = [name] if len(bits_list) > 1 else []
                suffix += [f"{'a' if k == 'alpha' else 'T'}{getattr(point, k):g}" for k in swept]
                identity = {**written, "bits": bits}
                if self.equalize is not None:
                    identity["equalize"] = self.equalize.model_dump(mode="json", exclude_none=True)
                if point is not None:
                    identity["distill"] = point.model_dump(mode="json")
                yield Variant(tuple(suffix), stages, identity, run_labels)

    def _method_stages(self, bits: BitsValue | None, point: DistillConfig | None) -> Recipe:
        """The recipe ``method`` stands for at one sweep point."""
        if self.method == "half":
            return (self.half or HalfStage(),)
        if self.method == "float":
            if point is not None:
                return (DistillStage(**point.model_dump(), train=self.train or TrainConfig()),)
            if self.train is not None or self.init == "scratch":
                return (TrainStage(**(self.train or TrainConfig()).model_dump()),)
            return ()
        allocation = allocation_of(bits)
        quantize = QuantizeStage(
            mode=self.method,
            bits=None if allocation else bits,
            calibration_batches=self.calibration_batches,
            fold_bn=self.fold_bn,
            train=(self.train or TrainConfig()) if self.method == "qat" else None,
            distill=point,
            phases=self.phases,
        )
        prepare = [s for s in (self.equalize, allocation) if s is not None]
        return (*prepare, quantize)
