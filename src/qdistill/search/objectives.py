"""What a search can minimise or constrain: a candidate's quality (from its run records),
its cost measured on this machine (latency, throughput), counted (size, MACs, BOPs) or
estimated on an FPGA (LUTs, BRAM, FPS from the dataflow cost model).

Every objective is turned into one to minimise (``sign`` -1 for those where more is
better), so the Pareto front, hypervolume and constraints treat them alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from qdistill.errors import ConfigError
from qdistill.registry import unknown_name
from qdistill.tasks import TASKS

Source = Literal["quality", "record", "model", "timing", "fpga"]


@dataclass(frozen=True)
class Objective:
    name: str
    label: str
    higher_is_better: bool
    source: Source  # where the value comes from, i.e. what measuring it needs

    @property
    def sign(self) -> float:
        return -1.0 if self.higher_is_better else 1.0


_COSTS = [
    Objective("latency_ms", "Latency b=1 (ms)", False, "timing"),
    Objective("throughput", "Throughput (img/s)", True, "timing"),
    Objective("size_bytes", "Size (bytes)", False, "record"),
    Objective("params", "Parameters", False, "record"),
    Objective("macs", "MACs", False, "model"),
    Objective("bops", "BOPs", False, "model"),
    Objective("fpga_luts", "FPGA LUTs", False, "fpga"),
    Objective("fpga_bram", "FPGA BRAM18", False, "fpga"),
    Objective("fpga_dsp", "FPGA DSPs", False, "fpga"),
    Objective("fpga_fps", "FPGA FPS", True, "fpga"),
]


def known_objectives(task: str) -> dict[str, Objective]:
    """Every objective a search on ``task`` may name: the task's validation monitor (and
    ``error``, 100 - validation accuracy, for classification) and the costs. Candidates
    are ranked on the validation split; the test split is only reported."""
    kind = TASKS.get(task)
    quality = {kind.monitor: Objective(kind.monitor, kind.monitor, True, "quality")}
    if kind.monitor == "val_acc":
        quality["error"] = Objective("error", "Val. error (%)", False, "quality")
    return {**quality, **{o.name: o for o in _COSTS}}


def objective(name: str, task: str) -> Objective:
    known = known_objectives(task)
    if name not in known:
        raise unknown_name("objective", name, sorted(known), f"a {task.replace('_', '-')} search")
    return known[name]


_CONSTRAINT = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=)\s*([-+0-9.eE]+)\s*$")


@dataclass(frozen=True)
class Constraint:
    """``objective <= bound`` or ``objective >= bound``."""

    objective: Objective
    operator: Literal["<=", ">="]
    bound: float

    @property
    def text(self) -> str:
        return f"{self.objective.name} {self.operator} {self.bound:g}"

    def violation(self, value: float) -> float:
        """How far ``value`` is outside the bound (<= 0 when it is met): pymoo's G."""
        return value - self.bound if self.operator == "<=" else self.bound - value


def parse_constraint(text: str, task: str) -> Constraint:
    match = _CONSTRAINT.match(text)
    if match is None:
        raise ConfigError(
            f"constraint {text!r} must read '<objective> <= <number>' or '<objective> >= "
            "<number>', e.g. 'latency_ms <= 2' or 'fpga_fps >= 1000'"
        )
    name, operator, bound = match.groups()
    try:
        value = float(bound)
    except ValueError:
        raise ConfigError(f"constraint {text!r}: {bound!r} is not a number") from None
    return Constraint(objective(name, task), operator, value)  # type: ignore[arg-type]
