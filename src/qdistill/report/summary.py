"""Aggregate run records into rows: one per configuration, mean and standard error over
seeds."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from qdistill.experiment.record import RunRecord


@dataclass
class Stat:
    mean: float
    se: float | None  # standard error of the mean; None with a single value
    n: int

    @classmethod
    def of(cls, values: list[float]) -> Stat | None:
        values = [v for v in values if v is not None and math.isfinite(v)]
        if not values:
            return None
        se = statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else None
        return cls(statistics.fmean(values), se, len(values))

    def format(self, digits: int = 2) -> str:
        text = f"{self.mean:.{digits}f}"
        return text if self.se is None else f"{text} ± {self.se:.{digits}f}"


@dataclass
class SummaryRow:
    name: str
    group: str
    model: str
    method: str
    bits: str
    w_bits: int | None
    a_bits: int | None
    quantized: bool
    seeds: list[int]
    alpha: float | None = None
    temperature: float | None = None
    metrics: dict[str, Stat] = field(default_factory=dict)
    size_bytes: float = 0.0
    reference_bytes: float = 0.0  # the float model the run started from
    wall_s: Stat | None = None

    @property
    def compression(self) -> float:
        return self.reference_bytes / self.size_bytes if self.size_bytes else math.nan


def reference_bytes(record: RunRecord) -> int:
    """Size of the float model a run started from (its first stage): compression counts
    what pruning removed as well as what quantization saved. Records without stages
    (older results) fall back to the model's own float32 size."""
    return record.stages[0].size_bytes if record.stages else record.float32_bytes


def method_label(record: RunRecord) -> str:
    """The method column: the method, its QKD phases, or a recipe's stages."""
    if record.method == "recipe":
        return record.recipe
    return f"{record.method} ({record.phases})" if record.phases else record.method


def summarize(records: list[RunRecord]) -> list[SummaryRow]:
    """One row per (name, model, method, bits), in order of first appearance."""
    groups: dict[tuple, list[RunRecord]] = {}
    for record in records:
        key = (record.name, record.model, method_label(record), record.bits)
        groups.setdefault(key, []).append(record)
    rows = []
    for (name, model, method, bits), members in groups.items():
        first = members[0]
        metric_names = sorted({k for r in members for k in r.metrics})
        rows.append(
            SummaryRow(
                name=name,
                group=first.group,
                model=model,
                method=method,
                bits=bits,
                w_bits=first.w_bits,
                a_bits=first.a_bits,
                quantized=first.plan is not None,
                seeds=sorted(r.seed for r in members),
                alpha=first.alpha,
                temperature=first.temperature,
                metrics={
                    m: stat
                    for m in metric_names
                    if (stat := Stat.of([r.metrics.get(m) for r in members])) is not None
                },
                size_bytes=statistics.fmean(r.size_bytes for r in members),
                reference_bytes=statistics.fmean(reference_bytes(r) for r in members),
                wall_s=Stat.of([r.wall_s for r in members]),
            )
        )
    return rows
