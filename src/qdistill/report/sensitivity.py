"""Report sections of mixed-precision runs: each unit's measured drop at every probed
level and the width it was given."""

from __future__ import annotations

from qdistill.experiment.record import RunRecord
from qdistill.quant import LayerQuantSpec
from qdistill.report.tables import markdown_table


def spec_label(spec: LayerQuantSpec | None) -> str:
    """``w4a4``, with ``(learned ranges)`` when the spec learns its ranges."""
    if spec is None:
        return "float"
    learned = any(q is not None and q.range == "learned" for q in (spec.weight, spec.act))
    return spec.short + (" (learned ranges)" if learned else "")


def _allocated(record: RunRecord, unit: str) -> str:
    rules = dict(record.allocation.plan.rules)
    return spec_label(rules[unit] if unit in rules else rules.get("*"))


def sensitivity_sections(records: list[RunRecord]) -> list[str]:
    """One table per allocated run (its first seed)."""
    lines: list[str] = []
    shown: set[str] = set()
    for record in records:
        allocation = record.allocation
        if allocation is None or record.name in shown:
            continue
        shown.add(record.name)
        levels = allocation.levels
        drops = {level: {s.unit: s.drop for s in units} for level, units in levels.items()}
        rows = [
            [
                s.unit,
                str(s.layers),
                f"{s.params:,}",
                *(f"{drops[level][s.unit]:+.3f}" for level in levels),
                _allocated(record, s.unit),
            ]
            for s in allocation.units
        ]
        headers = ["Unit", "Layers", "Params", *(f"Drop at {lv}" for lv in levels), "Allocated"]
        lines += [
            "",
            f"## Sensitivity and allocated plan: {record.name} (seed {record.seed})",
            "",
            f"Each unit quantized alone (PTQ), the rest float; drop of {allocation.metric} "
            f"from the float model's {allocation.float_score:.3f}. Budget "
            f"{allocation.budget_bytes:,} bytes; the plan's size is "
            f"{record.size_bytes:,} bytes.",
            "",
            markdown_table(headers, rows),
        ]
    return lines
