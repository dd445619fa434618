"""Read records of every schema results.jsonl has had into the current RunRecord.

Schema 1 (qdistill 0.1.0, no ``schema`` key): one flat dict per run, no per-stage
results. Its recipe is named by its method, its training, calibration and equalization
details become one stage record, its ``sensitivity`` the allocation, and its ``plan`` the
typed plan; its spec version is 1.
"""

from __future__ import annotations

from typing import Any

from qdistill.errors import ConfigError
from qdistill.experiment.record import SCHEMA_VERSION, RunRecord, StageRecord
from qdistill.quant import QuantPlan
from qdistill.quant.half import HalfPlan
from qdistill.quant.sensitivity import Allocation


class RecordError(ConfigError):
    """A results.jsonl record that this qdistill cannot read."""


def _legacy_stage(old: dict[str, Any]) -> StageRecord:
    details = {key: old[key] for key in ("training", "calibration_s", "equalized") if old.get(key)}
    return StageRecord(
        stage=old["method"],
        title=old["method"],
        wall_s=old.get("wall_s") or 0.0,
        metrics={},
        size_bytes=old["size_bytes"],
        details=details,
    )


def _legacy_allocation(old: dict[str, Any]) -> Allocation | None:
    sensitivity = old.get("sensitivity")
    if not sensitivity:
        return None
    levels = sensitivity.get("levels") or {sensitivity["probe"]: sensitivity["units"]}
    return Allocation.from_dict({**sensitivity, "levels": levels, "plan": old["plan"]})


def _from_schema_1(old: dict[str, Any]) -> RunRecord:
    method = old["method"]
    half = method == "half"
    plan = old.get("plan")
    return RunRecord(
        experiment=old["experiment"],
        run_id=old["run_id"],
        name=old["name"],
        group=old.get("group", old["name"]),
        seed=old["seed"],
        spec_version=1,
        task=old.get("task", "classification"),
        model=old["model"],
        method=method,
        recipe=method,
        bits=old["bits"],
        w_bits=old.get("w_bits"),
        a_bits=old.get("a_bits"),
        alpha=old.get("alpha"),
        temperature=old.get("temperature"),
        phases=old.get("phases"),
        plan=QuantPlan.from_config(plan) if plan and not half else None,
        half_plan=HalfPlan.from_config(plan) if plan and half else None,
        config=old.get("config") or {},
        compare_to=old.get("compare_to"),
        metrics={k: v for k, v in old["metrics"].items() if v is not None},
        stages=(_legacy_stage(old),),
        size_bytes=old["size_bytes"],
        float32_bytes=old["float32_bytes"],
        params=old.get("params", 0),
        wall_s=old.get("wall_s") or 0.0,
        allocation=_legacy_allocation(old),
        checkpoint=old["checkpoint"],
        data=old.get("data") or {},
        experiment_config=old.get("experiment_config") or {},
        versions=old.get("versions") or {},
        device=old.get("device", "?"),
        finished_at=old.get("finished_at", ""),
        notes={"lpips": old["lpips"]} if old.get("lpips") else {},
    )


def read_record(data: Any, where: str) -> RunRecord:
    """The RunRecord of one parsed results.jsonl line (``where`` names it in errors)."""
    if not isinstance(data, dict):
        raise RecordError(f"{where} is not a run record (a JSON object); remove that line")
    schema = data.get("schema", 1)
    if not isinstance(schema, int) or schema > SCHEMA_VERSION:
        raise RecordError(
            f"{where} has record schema {schema!r}, newer than this qdistill reads "
            f"({SCHEMA_VERSION}); upgrade qdistill or write to another --out folder"
        )
    try:
        return _from_schema_1(data) if schema == 1 else RunRecord.from_json(data)
    except (KeyError, TypeError, ValueError, ConfigError) as err:
        problem = f"missing {err}" if isinstance(err, KeyError) else str(err)
        raise RecordError(
            f"{where}: cannot read this schema-{schema} run record ({problem}); remove that "
            "line to re-run the run, or write to another --out folder"
        ) from None
