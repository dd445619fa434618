"""The shipped demo meets the foundation's accuracy targets (slow: about a minute)."""

import pytest

from qdistill.experiment import load_experiment, run_experiment
from qdistill.experiment.shipped import shipped_config
from qdistill.report import summarize

pytestmark = pytest.mark.slow


def test_demo_digits_meets_targets(tmp_path):
    outcome = run_experiment(load_experiment(shipped_config("demo-digits")), tmp_path)
    rows = {row.name: row.metrics["test_acc"].mean for row in summarize(outcome.records)}
    teacher = rows["teacher"]
    assert teacher >= 97.0
    assert abs(rows["ptq-w8a8"] - teacher) <= 0.5
    assert teacher - rows["qat-w4a4"] <= 1.5
    assert rows["qat-w2a2"] > rows["ptq-w2a2"] + 10
    for record in outcome.records:
        metrics = record.metrics
        if "test_acc_integer" in metrics:
            assert abs(metrics["test_acc_integer"] - metrics["test_acc"]) <= 0.3
