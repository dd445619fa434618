"""Training: one plain loop, optimisers and schedules from config, safetensors checkpoints."""

from qdistill.train.checkpoint import load_checkpoint, load_state_into, save_checkpoint
from qdistill.train.config import OptimizerConfig, ScheduleConfig, TrainConfig
from qdistill.train.loop import TrainResult, classification_loss, fit

__all__ = [
    "OptimizerConfig",
    "ScheduleConfig",
    "TrainConfig",
    "TrainResult",
    "classification_loss",
    "fit",
    "load_checkpoint",
    "load_state_into",
    "save_checkpoint",
]
