"""Experiments: YAML schema, planner, local executor, results store."""

from qdistill.experiment.planner import Run, config_hash, plan_runs
from qdistill.experiment.results import ResultsStore
from qdistill.experiment.runner import ExperimentOutcome, run_experiment
from qdistill.experiment.schema import ExperimentConfig, load_experiment, parse_experiment

__all__ = [
    "ExperimentConfig",
    "ExperimentOutcome",
    "ResultsStore",
    "Run",
    "config_hash",
    "load_experiment",
    "parse_experiment",
    "plan_runs",
    "run_experiment",
]
