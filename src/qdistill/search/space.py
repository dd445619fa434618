"""Search spaces: what a candidate student is, as a vector of small integers (a genome)
that NSGA-II can cross and mutate, and back.

Every gene is an index into a list of allowed values, so any integer vector inside the
bounds decodes to a valid candidate. An architecture space (a registry entry with a typed
config) varies list-valued model options layer by layer: a depth gene and one width gene
per possible layer (widths past the depth are inactive and ignored, so two genomes can
decode to the same candidate: candidates are compared by their decoded ``key``). Recipe
genes vary fields of the candidate's training recipe (bits, pruning ratio, KD alpha/T).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import Field, field_validator, model_validator

from qdistill.config import StrictConfig
from qdistill.errors import ConfigError
from qdistill.registry import Registry


@dataclass(frozen=True)
class Gene:
    """One integer coordinate of a genome: an index into ``values``."""

    name: str
    values: tuple[Any, ...]


class LayerRange(StrictConfig):
    """A list-valued model option searched layer by layer: how many layers (``depth``)
    and the width each may take."""

    depth: list[int] = Field(min_length=1)
    widths: list[int] = Field(min_length=1)

    @field_validator("depth")
    @classmethod
    def _depths(cls, depth: list[int]) -> list[int]:
        if any(d < 0 for d in depth) or len(set(depth)) != len(depth):
            raise ValueError(f"depth choices must be distinct and >= 0, got {depth}")
        return sorted(depth)

    @field_validator("widths")
    @classmethod
    def _widths(cls, widths: list[int]) -> list[int]:
        if any(w < 1 for w in widths) or len(set(widths)) != len(widths):
            raise ValueError(f"width choices must be distinct and >= 1, got {widths}")
        return sorted(widths)


class ArchitectureSpace(StrictConfig):
    """Students of ``model`` whose list options ``layers`` are searched layer by layer and
    whose other options ``choices`` take one of their values; ``options`` are passed to
    every candidate unchanged."""

    model: str
    layers: dict[str, LayerRange] = Field(default_factory=dict)
    choices: dict[str, list[Any]] = Field(default_factory=dict)
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _disjoint(self) -> ArchitectureSpace:
        if not self.layers and not self.choices:
            raise ValueError("a space searches some 'layers' or 'choices'; it has neither")
        for name, values in self.choices.items():
            if not values or len({repr(v) for v in values}) != len(values):
                raise ValueError(f"choices.{name} must list distinct values, got {values}")
        named = [*self.layers, *self.choices, *self.options]
        twice = sorted({n for n in named if named.count(n) > 1})
        if twice:
            raise ValueError(f"{twice} appear in more than one of layers, choices and options")
        return self

    def genes(self) -> list[Gene]:
        genes = []
        for option, layer_range in self.layers.items():
            genes.append(Gene(f"{option}.depth", tuple(layer_range.depth)))
            genes += [
                Gene(f"{option}.{index}", tuple(layer_range.widths))
                for index in range(max(layer_range.depth))
            ]
        return genes + [Gene(name, tuple(values)) for name, values in self.choices.items()]

    def model_options(self, values: dict[str, Any]) -> dict[str, Any]:
        """The model options of decoded gene ``values``."""
        options = {**self.options, **{name: values[name] for name in self.choices}}
        for option in self.layers:
            depth = values[f"{option}.depth"]
            options[option] = [values[f"{option}.{index}"] for index in range(depth)]
        return options

    def gene_values(self, options: dict[str, Any]) -> dict[str, Any]:
        """Gene values of model ``options`` (the inverse of :meth:`model_options`; the
        inactive widths take the smallest choice); ValueError when outside the space."""
        values: dict[str, Any] = {}
        for option, layer_range in self.layers.items():
            widths = options.get(option)
            if not isinstance(widths, list):
                raise ValueError(f"{option} must be a list of widths, got {widths!r}")
            if len(widths) not in layer_range.depth:
                raise ValueError(
                    f"{option} has {len(widths)} layers; the space allows {layer_range.depth}"
                )
            outside = [w for w in widths if w not in layer_range.widths]
            if outside:
                raise ValueError(f"{option} widths {outside} are not among {layer_range.widths}")
            values[f"{option}.depth"] = len(widths)
            for index in range(max(layer_range.depth)):
                values[f"{option}.{index}"] = (
                    widths[index] if index < len(widths) else layer_range.widths[0]
                )
        for name in self.choices:
            if name not in options:
                raise ValueError(f"give {name} (one of {self.choices[name]})")
            values[name] = options[name]
        return values


SPACES: Registry[ArchitectureSpace] = Registry("search space")


def _register(name: str, space: dict[str, Any]) -> None:
    SPACES.register(name)(ArchitectureSpace.model_validate(space))


# The studies' students: NEMOKD's flexible CNN, the FINN MLP study's hidden layers, ESPCN's
# two feature widths, a CIFAR ResNet's depth and stem and stage widths. Their ranges are
# starting points a config can replace.
_register(
    "flex_cnn",
    {
        "model": "flex_cnn",
        "layers": {
            "conv": {"depth": [1, 2, 3], "widths": [4, 8, 16, 32, 64]},
            "fc": {"depth": [0, 1, 2], "widths": [16, 32, 64, 128]},
        },
    },
)
_register(
    "mlp",
    {"model": "mlp", "layers": {"hidden": {"depth": [1, 2, 3], "widths": [16, 32, 64, 128, 256]}}},
)
_register(
    "espcn",
    {"model": "espcn", "layers": {"features": {"depth": [2], "widths": [8, 16, 32, 64]}}},
)
_register(
    "cifar_resnet",
    {
        "model": "cifar_resnet",
        "layers": {"widths": {"depth": [4], "widths": [8, 16, 32, 64, 128]}},
        "choices": {"depth": [8, 14, 20]},
    },
)


def architecture_space(entry: str | dict[str, Any]) -> ArchitectureSpace:
    """A registered space by name, or one written out (``{name: flex_cnn, layers: ...}``
    overrides a registered space's fields; without ``name`` it stands alone)."""
    if isinstance(entry, str):
        return SPACES.get(entry)
    entry = dict(entry)
    name = entry.pop("name", None)
    base = SPACES.get(name).model_dump() if name is not None else {}
    return ArchitectureSpace.model_validate({**base, **entry})


@dataclass(frozen=True)
class Candidate:
    """A decoded genome: the student's model options and its recipe gene values."""

    model_options: dict[str, Any]
    recipe_values: dict[str, Any]

    @property
    def key(self) -> str:
        """Equal for equal candidates, whatever their inactive genes."""
        return json.dumps([self.model_options, self.recipe_values], sort_keys=True, default=str)


@dataclass(frozen=True)
class SearchSpace:
    """An architecture space and recipe genes (recipe path -> allowed values)."""

    architecture: ArchitectureSpace
    recipe_genes: dict[str, tuple[Any, ...]]

    @property
    def all_genes(self) -> list[Gene]:
        return [*self.architecture.genes(), *(Gene(p, v) for p, v in self.recipe_genes.items())]

    @property
    def genes(self) -> list[Gene]:
        """The genome's coordinates: the genes with a choice (one value is no choice)."""
        return [gene for gene in self.all_genes if len(gene.values) > 1]

    @property
    def constants(self) -> dict[str, Any]:
        return {gene.name: gene.values[0] for gene in self.all_genes if len(gene.values) == 1}

    @property
    def upper_bounds(self) -> list[int]:
        return [len(gene.values) - 1 for gene in self.genes]

    def decode(self, genome: Sequence[int]) -> Candidate:
        genes = self.genes
        if len(genome) != len(genes):
            raise ValueError(f"a genome of this space has {len(genes)} genes, got {len(genome)}")
        values = dict(self.constants)
        for gene, index in zip(genes, genome, strict=True):
            if not 0 <= int(index) < len(gene.values):
                raise ValueError(
                    f"gene {gene.name}: index {index} outside 0..{len(gene.values) - 1}"
                )
            values[gene.name] = gene.values[int(index)]
        recipe = {path: values.pop(path) for path in self.recipe_genes}
        return Candidate(self.architecture.model_options(values), recipe)

    def encode(self, model_options: dict[str, Any], recipe_values: dict[str, Any]) -> list[int]:
        """The genome of a candidate written in the space's own terms (model options and
        recipe gene values); ConfigError naming what lies outside the space."""
        try:
            values = self.architecture.gene_values(model_options)
        except ValueError as err:
            raise ConfigError(f"search.baseline: {err}") from None
        missing = sorted(set(self.recipe_genes) - set(recipe_values))
        if missing:
            raise ConfigError(
                f"search.baseline: give the value of every recipe gene; missing {missing}"
            )
        values.update(recipe_values)
        genome = []
        for gene in self.all_genes:
            if values[gene.name] not in gene.values:
                raise ConfigError(
                    f"search.baseline: {gene.name} = {values[gene.name]!r} is not among "
                    f"{list(gene.values)}"
                )
            if len(gene.values) > 1:
                genome.append(gene.values.index(values[gene.name]))
        return genome

    @property
    def size(self) -> int:
        """How many distinct genomes (an upper bound on distinct candidates)."""
        total = 1
        for gene in self.genes:
            total *= len(gene.values)
        return total
