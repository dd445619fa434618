"""Configs: unknown keys refused, and fields added later invisible at their default (so
run ids and cache keys recorded before they existed do not change)."""

import pytest
from pydantic import ValidationError

from qdistill.config import StrictConfig, added_later
from qdistill.experiment import parse_experiment, plan_runs


class Before(StrictConfig):
    epochs: int = 3


class After(StrictConfig):
    epochs: int = 3
    precision: str = added_later("fp32")


class Outer(StrictConfig):
    train: After = After()


def test_a_field_added_later_is_left_out_of_dumps_at_its_default():
    assert After().model_dump() == Before().model_dump() == {"epochs": 3}
    assert After(precision="bf16").model_dump(mode="json") == {"epochs": 3, "precision": "bf16"}
    assert Outer().model_dump() == {"train": {"epochs": 3}}  # nested too
    assert Outer(train={"precision": "bf16"}).model_dump()["train"]["precision"] == "bf16"
    assert After.model_validate(After(precision="bf16").model_dump()).precision == "bf16"
    with pytest.raises(ValidationError, match="extra"):
        After(precison="bf16")


def test_run_ids_do_not_move_when_fields_are_added(tiny_config):
    """The ids of tests/conftest.py's TINY sweep as computed before any field was added
    later: a new optional field that changes one of them has orphaned every recorded run."""
    ids = [run.run_id for run in plan_runs(parse_experiment(tiny_config))]
    assert ids == ["a0426b107536", "56a6ecb475b5", "98728d6e4aef", "772951a72825", "3baa191cbe70"]
