"""Module wrappers of the output distillation losses, registered under their YAML names.

Each is called as ``loss(student_output, teacher_output, target)``; the target is the
label (classification) or the ground-truth image (image-to-image models).
"""

from __future__ import annotations

import torch
from torch import nn

from qdistill.distill.config import DistillConfig
from qdistill.distill.losses import kd_kl_loss, pixel_kd_loss
from qdistill.registry import Registry

OUTPUT_LOSSES: Registry[type[nn.Module]] = Registry("output distillation loss")


@OUTPUT_LOSSES.register("kd_kl")
class KDLoss(nn.Module):
    """Hinton KD: alpha * T^2 * KL(teacher_T || student_T) + (1 - alpha) * CE."""

    def __init__(self, alpha: float = 0.7, temperature: float = 8.0) -> None:
        super().__init__()
        self.alpha, self.temperature = alpha, temperature

    def forward(
        self, student: torch.Tensor, teacher: torch.Tensor, target: torch.Tensor | None
    ) -> torch.Tensor:
        return kd_kl_loss(student, teacher, target, self.alpha, self.temperature)

    @classmethod
    def from_config(cls, config: DistillConfig) -> KDLoss:
        return cls(config.alpha, config.temperature)


@OUTPUT_LOSSES.register("pixel_kd")
class PixelKDLoss(nn.Module):
    """(1 - alpha) * L(student, target) + alpha * L(student, teacher), L in l1/l2/charbonnier."""

    def __init__(self, alpha: float = 0.2, kind: str = "l2") -> None:
        super().__init__()
        self.alpha, self.kind = alpha, kind

    def forward(
        self, student: torch.Tensor, teacher: torch.Tensor, target: torch.Tensor
    ) -> torch.Tensor:
        return pixel_kd_loss(student, target, teacher, self.alpha, self.kind)

    @classmethod
    def from_config(cls, config: DistillConfig) -> PixelKDLoss:
        return cls(config.alpha, config.pixel_loss)


def build_output_loss(config: DistillConfig) -> nn.Module:
    return OUTPUT_LOSSES.get(config.loss).from_config(config)
