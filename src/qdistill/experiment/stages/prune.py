"""The ``prune`` stage: unstructured magnitude pruning of the float model's conv/linear
weights; later training stages keep the pruned weights at zero."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from qdistill.experiment.stages.base import StageConfig, StageContext, StudentState, stage
from qdistill.prune import apply_masks, magnitude_masks, weight_sparsity


class PruneStage(StageConfig):
    """``ratio`` of the weights set to zero, smallest |w| first, ranked over all layers
    (``scope: global``) or within each (``local``); ``ignore``: plan patterns of layers
    left whole (e.g. ``["@last"]`` for a classifier head)."""

    ratio: float = Field(gt=0.0, lt=1.0)
    scope: Literal["global", "local"] = "global"
    ignore: list[str] = Field(default_factory=list)

    @property
    def title(self) -> str:
        return f"prune({self.ratio:g})"


@stage("prune", PruneStage)
def run_prune(config: PruneStage, state: StudentState, ctx: StageContext) -> dict[str, Any]:
    masks = magnitude_masks(state.model, config.ratio, config.scope, config.ignore)
    apply_masks(state.model, masks)
    state.masks.update(masks)
    sparsity = weight_sparsity(state.model)
    ctx.log(f"pruned {config.ratio:.0%} of the weights of {len(masks)} layers")
    return {"layers": sorted(masks), "sparsity": sparsity}
