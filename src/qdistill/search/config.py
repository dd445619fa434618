"""The ``search:`` block of an experiment YAML, checked on load.

    search:
      space: flex_cnn                      # or {name: flex_cnn, layers: {conv: {...}}}
      recipe:                              # every candidate's stages, from random init
        - distill: {alpha: 0.5, temperature: 4, train: {epochs: 4}}
        - quantize: {mode: ptq, bits: w8a8}
      genes: {quantize.bits: [w8a8, w4a4]}  # recipe fields searched with the architecture
      phase1: {distill.alpha: [0.3, 0.7]}    # grid for the baseline; its best is carried on
      baseline: {conv: [16, 32], fc: [64], quantize.bits: w8a8}
      objectives: [error, latency_ms]
      constraints: ["latency_ms <= 2"]
      population: 8
      generations: 5
      final: {distill.train.epochs: 30}      # the chosen and baseline students, trained fully

Every recipe path of ``genes``, ``phase1`` and ``final`` is checked at every value it
may take, so a bad value fails before anything trains.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator

from qdistill.config import StrictConfig, located_errors
from qdistill.data import dataset_task
from qdistill.errors import ConfigError
from qdistill.experiment.recipe import parse_recipe
from qdistill.experiment.schema import ExperimentConfig, format_validation_error
from qdistill.experiment.students import _set_path
from qdistill.models import model_task
from qdistill.search.algorithms import Algorithm
from qdistill.search.measure import FpgaConfig, TimingConfig
from qdistill.search.objectives import Constraint, Objective, objective, parse_constraint
from qdistill.search.space import ArchitectureSpace, SearchSpace, architecture_space

RecipePath = str


def recipe_with(recipe: list[Any], values: dict[RecipePath, Any]) -> list[Any]:
    """A copy of ``recipe`` with each ``stage.field`` path set to its value."""
    raw = copy.deepcopy(recipe)
    for path, value in values.items():
        _set_path(raw, path, value)
    return raw


class SearchConfig(StrictConfig):
    space: str | dict[str, Any]
    recipe: list[Any] = Field(min_length=1)
    genes: dict[RecipePath, list[Any]] = Field(default_factory=dict)
    phase1: dict[RecipePath, list[Any]] = Field(default_factory=dict)
    baseline: dict[str, Any]
    objectives: list[str] = Field(default_factory=lambda: ["error", "latency_ms"], min_length=2)
    constraints: list[str] = Field(default_factory=list)
    timing: TimingConfig = TimingConfig()
    fpga: FpgaConfig = FpgaConfig()
    algorithm: Algorithm = "nsga2"
    population: int = Field(8, ge=2)
    generations: int = Field(5, ge=1)
    seed: int = 0
    final: dict[RecipePath, Any] = Field(default_factory=dict)

    @field_validator("space")
    @classmethod
    def _space(cls, value: str | dict[str, Any]) -> str | dict[str, Any]:
        with located_errors():
            architecture_space(value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SearchConfig:
        for where, axes in (("genes", self.genes), ("phase1", self.phase1)):
            for path, values in axes.items():
                if not values:
                    raise ValueError(f"{where}.{path} lists no values")
                if len({repr(v) for v in values}) != len(values):
                    raise ValueError(f"{where}.{path} repeats a value: {values}")
        both = sorted(set(self.genes) & set(self.phase1))
        if both:
            raise ValueError(f"{both} are both searched (genes) and fixed by phase 1; pick one")
        if len(set(self.objectives)) != len(self.objectives):
            raise ValueError(f"objectives repeat: {self.objectives}")
        space = self.search_space()
        if space.size < 2:
            raise ValueError(
                "the search space holds a single candidate; give some layer or gene more "
                "than one value"
            )
        self._check_recipes(space)
        return self

    def _check_recipes(self, space: SearchSpace) -> None:
        """Parse the recipe at every value of every path, each varied from the baseline."""
        unknown = sorted(set(self.baseline) - set(space.architecture.layers) - set(self.genes))
        if unknown:
            known = [*space.architecture.layers, *self.genes]
            raise ValueError(f"baseline: {unknown} are neither searched layers nor genes {known}")
        base = {path: values[0] for path, values in self.phase1.items()}
        base.update({p: v for p, v in self.baseline.items() if p in self.genes})
        varied = [{**base}, {**base, **self.final}]
        for path, values in [*self.genes.items(), *self.phase1.items()]:
            varied += [{**base, path: value} for value in values]
        for values in varied:
            try:
                parse_recipe(recipe_with(self.recipe, values))
            except ValueError as err:
                raise ValueError(f"recipe with {values}: {err}") from None
        space.encode(self.baseline_options(), self.baseline_genes())

    def search_space(self) -> SearchSpace:
        return SearchSpace(
            self.architecture(), {path: tuple(values) for path, values in self.genes.items()}
        )

    def architecture(self) -> ArchitectureSpace:
        return architecture_space(self.space)

    def baseline_options(self) -> dict[str, Any]:
        return {k: v for k, v in self.baseline.items() if k not in self.genes}

    def baseline_genes(self) -> dict[str, Any]:
        return {k: v for k, v in self.baseline.items() if k in self.genes}

    def checked_objectives(self, task: str) -> tuple[list[Objective], list[Constraint]]:
        """The objectives and constraints for ``task``; ConfigError for an unknown name, a
        malformed or contradictory constraint."""
        objectives = [objective(name, task) for name in self.objectives]
        constraints = [parse_constraint(text, task) for text in self.constraints]
        _check_satisfiable(constraints)
        return objectives, constraints


def _check_satisfiable(constraints: list[Constraint]) -> None:
    for c in constraints:
        for other in constraints:
            same = c.objective.name == other.objective.name
            if same and c.operator == "<=" and other.operator == ">=" and c.bound < other.bound:
                raise ConfigError(
                    f"constraints {other.text!r} and {c.text!r} contradict each other: no value "
                    "meets both"
                )


def search_of(config: ExperimentConfig, source: str = "<experiment>") -> SearchConfig:
    """The experiment's ``search`` block, checked against its task: known objectives,
    sound constraints, a space of the task's models."""
    if config.search is None:
        raise ConfigError(f"{source} has no 'search' block to run; see configs/search-digits.yaml")
    try:
        search = SearchConfig.model_validate(config.search)
    except ValidationError as err:
        raise ConfigError(format_validation_error(err, source, "search")) from None
    kind = dataset_task(config.data.name)
    try:
        search.checked_objectives(kind)
    except ConfigError as err:
        raise ConfigError(f"{source}: search: {err}") from None
    model = search.architecture().model
    if model_task(model) != kind:
        raise ConfigError(
            f"{source}: search.space: model {model!r} is a {model_task(model).replace('_', '-')} "
            f"model but dataset {config.data.name!r} is a {kind.replace('_', '-')} dataset"
        )
    return search
