"""The stages a student's recipe is made of, registered by name (see ``base``)."""

from qdistill.experiment.stages import (  # noqa: F401  (register the stages)
    equalize,
    half,
    mixed_precision,
    prune,
    quantize,
    training,
)
from qdistill.experiment.stages.base import (
    STAGES,
    ModelKind,
    StageConfig,
    StageContext,
    StageDefinition,
    StudentState,
    definition_of,
    stage,
)

__all__ = [
    "STAGES",
    "ModelKind",
    "StageConfig",
    "StageContext",
    "StageDefinition",
    "StudentState",
    "definition_of",
    "stage",
]
