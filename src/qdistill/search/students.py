"""A candidate as an ordinary student: the space's model at the candidate's widths,
trained from random initialisation by the search's recipe with the candidate's (and
phase 1's) recipe values set. Its name hashes its model and recipe, so equal candidates
are one student, one set of runs, trained once."""

from __future__ import annotations

from typing import Any

from qdistill.experiment.planner import config_hash
from qdistill.experiment.students import StudentConfig
from qdistill.search.config import SearchConfig, recipe_with


def candidate_student(
    search: SearchConfig,
    model_options: dict[str, Any],
    recipe_values: dict[str, Any],
    name: str | None = None,
) -> StudentConfig:
    """The student of a candidate; ``name`` replaces the hashed one (the final runs)."""
    recipe = recipe_with(search.recipe, recipe_values)
    model = {"name": search.architecture().model, "options": model_options}
    name = name or "c-" + config_hash({"model": model, "recipe": recipe}, 10)
    return StudentConfig(name=name, model=model, init="scratch", recipe=recipe)
