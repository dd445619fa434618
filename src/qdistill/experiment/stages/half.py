"""The ``half`` stage: run the float model in float16 or bfloat16, keeping chosen modules
(plan patterns such as ``@first``) in float32."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from qdistill.experiment.stages.base import StageConfig, StageContext, StudentState, stage
from qdistill.quant.half import HalfPlan, half_precision


class HalfStage(StageConfig):
    dtype: Literal["float16", "bfloat16"] = "float16"
    keep_fp32: list[str] = Field(default_factory=list)

    @property
    def plan(self) -> HalfPlan:
        return HalfPlan(self.dtype, tuple(self.keep_fp32))

    @property
    def title(self) -> str:
        return f"half({self.plan.label})"


@stage("half", HalfStage, produces="half")
def run_half(config: HalfStage, state: StudentState, ctx: StageContext) -> dict[str, Any]:
    state.model = half_precision(state.model, config.plan)
    return {"plan": config.plan.to_config()}
