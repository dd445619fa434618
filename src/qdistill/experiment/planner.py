"""Expand an experiment into runs: one per (student, bits, alpha, T, seed) plus the teacher.

Each run's id is a hash of everything that determines its result (data, teacher,
student recipe, bits, seed, qdistill version), so re-running the same file finds
finished runs and a changed recipe or a new release gets a new id.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from qdistill import __version__
from qdistill.distill.config import DistillConfig
from qdistill.experiment.schema import (
    BitsValue,
    ExperimentConfig,
    StudentConfig,
    allocation_of,
    number_repeats,
)
from qdistill.quant import QuantPlan

TEACHER = "teacher"


def config_hash(obj: Any, length: int = 12) -> str:
    """Stable short hash of a JSON-able object (key order does not matter)."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


@dataclass(frozen=True)
class Run:
    run_id: str
    name: str  # "teacher", or the student name with the swept values appended
    seed: int
    student: StudentConfig | None  # None for the teacher run
    bits: BitsValue | None
    distill: DistillConfig | None = None  # this run's point of the alpha/T sweep

    @property
    def method(self) -> str:
        return "float" if self.student is None else self.student.method

    def config(self) -> dict[str, Any]:
        """The run's own recipe, as recorded with its result."""
        if self.student is None:
            return {"role": TEACHER}
        recipe = {**self.student.model_dump(mode="json"), "bits": self.bits}
        if self.distill is not None:
            recipe["distill"] = self.distill.model_dump(mode="json")
        return recipe


def bits_label(bits: BitsValue | None) -> str:
    """'float', 'w4a4', 'w4a4+first=w4a8' (a plan with exceptions), or the label of a
    sensitivity allocation ('alloc' unless it names one)."""
    if bits is None:
        return "float"
    allocation = allocation_of(bits)
    if allocation:
        return allocation.label
    return QuantPlan.from_config(bits).short


def plan_runs(config: ExperimentConfig) -> list[Run]:
    """All runs of ``config``, seed by seed, the teacher first."""
    shared = {
        "data": config.data.model_dump(mode="json"),
        "teacher": config.teacher.model_dump(mode="json"),
        # a new release may compute differently: its runs are new runs
        "qdistill": __version__,
    }
    runs = []
    for seed in config.seeds:
        runs.append(Run(config_hash({**shared, "seed": seed}), TEACHER, seed, None, None))
        for student in config.students:
            runs.extend(_student_runs(student, shared, seed))
    return runs


def _student_runs(student: StudentConfig, shared: dict[str, Any], seed: int) -> list[Run]:
    bits_list = student.bits_list()
    labels = number_repeats([bits_label(b) for b in bits_list])
    distillation = student.distillation
    points: list[DistillConfig | None] = distillation.sweep_points() if distillation else [None]
    swept = distillation.swept if distillation else []
    runs = []
    for index, bits in enumerate(bits_list):
        label = labels[index]
        for point in points:
            parts = [student.name] + ([label] if len(bits_list) > 1 else [])
            if point is not None:
                parts += [
                    f"{'a' if key == 'alpha' else 'T'}{getattr(point, key):g}" for key in swept
                ]
            # Keys added after runs were recorded stay out while unset, so those runs keep
            # their ids and are found again.
            recipe = {
                **student.model_dump(mode="json", exclude={"compare_to", "equalize"}),
                "bits": bits,
            }
            if student.equalize is not None:
                recipe["equalize"] = student.equalize.model_dump(mode="json", exclude_none=True)
            if point is not None:
                recipe["distill"] = point.model_dump(mode="json")
            run_id = config_hash({**shared, "student": recipe, "seed": seed})
            runs.append(Run(run_id, "-".join(parts), seed, student, bits, point))
    return runs
