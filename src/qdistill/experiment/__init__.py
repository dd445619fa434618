"""Experiments: YAML schema, students and their recipes of stages, planner, runner,
typed run records and their store."""

from qdistill.experiment.planner import Run, config_hash, plan_runs
from qdistill.experiment.record import RunRecord, StageRecord
from qdistill.experiment.runner import ExperimentOutcome, run_experiment
from qdistill.experiment.schema import ExperimentConfig, load_experiment, parse_experiment
from qdistill.experiment.store import ResultsStore

__all__ = [
    "ExperimentConfig",
    "ExperimentOutcome",
    "ResultsStore",
    "Run",
    "RunRecord",
    "StageRecord",
    "config_hash",
    "load_experiment",
    "parse_experiment",
    "plan_runs",
    "run_experiment",
]
