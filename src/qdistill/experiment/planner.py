"""Expand an experiment into runs: the teacher, then every student's every variant, for
each seed. Runs hold single values only.

A run's id hashes everything that determines its result: data, teacher, the student as
written at its sweep point, the seed and the spec version (what a run computes; bumped
when qdistill starts computing a run differently, so recorded results are not mixed with
new ones). Re-running the same file finds finished runs; a changed recipe gets a new id.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal

from qdistill.errors import ConfigError
from qdistill.experiment.recipe import Recipe, RunLabels
from qdistill.experiment.schema import ExperimentConfig
from qdistill.experiment.students import StudentConfig, Variant
from qdistill.models import ModelConfig
from qdistill.train import TrainConfig

TEACHER = "teacher"
SPEC_VERSION = 1
Start = Literal["teacher", "pretrained", "scratch"]


def config_hash(obj: Any, length: int = 12) -> str:
    """Stable short hash of a JSON-able object (key order does not matter)."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def spec_key(version: int = SPEC_VERSION) -> dict[str, Any]:
    """What run ids and cached float models hash for the spec version. Version 1 is
    what qdistill 0.1.0 computed, whose ids hashed the package version; that entry is
    kept so every run recorded then keeps its id."""
    return {"qdistill": "0.1.0"} if version == 1 else {"spec_version": version}


@dataclass(frozen=True)
class Run:
    """One run: a model, where it starts, the stages it goes through, and its seed."""

    run_id: str
    name: str  # "teacher", or the student name with the sweep point appended
    group: str  # the student's name ("teacher" for the teacher)
    seed: int
    model: ModelConfig
    start: Start  # a copy of the teacher, a float model trained by ``pretrain``, or random
    pretrain: TrainConfig | None
    stages: Recipe
    method: str  # the method (or "recipe") the student was written with
    labels: RunLabels
    config: dict[str, Any]  # the student as written at this sweep point
    compare_to: str | None = None

    @property
    def needs_teacher(self) -> bool:
        return self.start == "teacher" or any(stage.needs_teacher for stage in self.stages)


def plan_runs(config: ExperimentConfig) -> list[Run]:
    """All runs of ``config``, seed by seed, the teacher first."""
    shared = {
        "data": config.data.model_dump(mode="json"),
        "teacher": config.teacher.model_dump(mode="json"),
        **spec_key(),
    }
    runs = []
    for seed in config.seeds:
        runs.append(
            Run(
                config_hash({**shared, "seed": seed}),
                TEACHER,
                TEACHER,
                seed,
                config.teacher.model,
                "teacher",
                None,
                (),
                "float",
                RunLabels(),
                {"role": TEACHER},
            )
        )
        for student in config.students:
            for variant in student.variants:
                runs.append(_student_run(config, student, variant, shared, seed))
    return runs


def _student_run(
    config: ExperimentConfig,
    student: StudentConfig,
    variant: Variant,
    shared: dict[str, Any],
    seed: int,
) -> Run:
    if student.init == "scratch":
        start: Start = "scratch"
    elif student.model is None:
        start = "teacher"
    else:
        start = "pretrained"
    return Run(
        run_id=config_hash({**shared, "student": variant.identity, "seed": seed}),
        name="-".join([student.name, *variant.suffix]),
        group=student.name,
        seed=seed,
        model=student.model or config.teacher.model,
        start=start,
        pretrain=(student.pretrain or config.teacher.train) if start == "pretrained" else None,
        stages=variant.stages,
        method=student.method_label,
        labels=variant.labels,
        config=variant.identity,
        compare_to=student.compare_to,
    )


def check_selections(config: ExperimentConfig, runs: list[Run]) -> None:
    """Every run an export, benchmark, hardware or references block names is planned (a
    run name such as ``ptq-w4a4`` or a student's name); checked before anything runs or
    is written."""
    known = {run.name for run in runs} | {run.group for run in runs}
    blocks = {"export": config.export, "benchmark": config.benchmark, "hardware": config.hardware}
    for key, block in blocks.items():
        if block is None:
            continue
        named = [*block.runs, *(n for t in getattr(block, "targets", []) for n in t.runs)]
        _check_named(f"{key}.runs", named, known, runs)
    for index, block in enumerate(config.references):
        _check_named(f"references.{index}.values", list(block.values), known, runs)


def _check_named(where: str, named: list[str], known: set[str], runs: list[Run]) -> None:
    unknown = sorted(set(named) - known)
    if unknown:
        students = sorted({run.group for run in runs})
        raise ConfigError(
            f"{where} names no planned run: {unknown}; use a student name "
            f"({', '.join(students)}) or a run name such as {runs[-1].name!r}"
        )
