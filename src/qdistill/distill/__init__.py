"""Knowledge distillation: losses, feature capture, teacher-output cache, schedules."""

from qdistill.distill.cache import TeacherOutputCache, cache_disabled_reason, cache_key
from qdistill.distill.capture import FeatureCapture
from qdistill.distill.config import DistillConfig, FeatureTermConfig, QKDPhases
from qdistill.distill.distiller import Distiller
from qdistill.distill.losses import (
    attention_map,
    attention_transfer_loss,
    charbonnier_loss,
    feature_mse_loss,
    kd_kl_loss,
    pixel_kd_loss,
)
from qdistill.distill.output_losses import OUTPUT_LOSSES, KDLoss, PixelKDLoss
from qdistill.distill.schedules import distill, qkd
from qdistill.distill.terms import FEATURE_TERMS

__all__ = [
    "FEATURE_TERMS",
    "OUTPUT_LOSSES",
    "DistillConfig",
    "Distiller",
    "FeatureCapture",
    "FeatureTermConfig",
    "KDLoss",
    "PixelKDLoss",
    "QKDPhases",
    "TeacherOutputCache",
    "attention_map",
    "attention_transfer_loss",
    "cache_disabled_reason",
    "cache_key",
    "charbonnier_loss",
    "distill",
    "feature_mse_loss",
    "kd_kl_loss",
    "pixel_kd_loss",
    "qkd",
]
