"""Distillation losses as pure functions of tensors.

- Hinton KD: alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, y)
- pixel-wise output KD: (1 - alpha) * L(s, target) + alpha * L(s, teacher)
- attention transfer: squared distance of L2-normalised spatial attention maps
- feature MSE between (projected, resized) feature maps
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from qdistill.errors import ShapeMismatchError
from qdistill.train.loop import labelled_cross_entropy


def check_same_shape(student: torch.Tensor, teacher: torch.Tensor, what: str) -> None:
    if student.shape != teacher.shape:
        raise ShapeMismatchError(
            f"{what}: student output shape {tuple(student.shape)} does not match teacher "
            f"output shape {tuple(teacher.shape)}; use models with the same outputs"
        )


def kd_kl_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor | None,
    alpha: float,
    temperature: float,
) -> torch.Tensor:
    """Hinton's knowledge-distillation loss (batch mean).

    The T^2 factor keeps the soft term's gradients on the scale of the hard term's as
    T changes. alpha = 0 is plain cross-entropy; alpha = 1 ignores the labels. Samples
    whose label is withheld (``UNLABELLED``) learn from the teacher only.
    """
    check_same_shape(student_logits, teacher_logits, "kd_kl")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    if alpha < 1 and labels is None:
        raise ValueError("kd_kl with alpha < 1 needs labels")
    hard = labelled_cross_entropy(student_logits, labels) if alpha < 1 else None
    if alpha == 0:
        return hard
    soft = F.kl_div(
        F.log_softmax(student_logits / temperature, dim=1),
        F.log_softmax(teacher_logits / temperature, dim=1),
        reduction="batchmean",
        log_target=True,
    )
    weight = alpha * temperature**2
    if hard is None:
        return soft * weight
    return torch.add(hard * (1.0 - alpha), soft, alpha=weight)  # one fused scale-and-add


def charbonnier_loss(x: torch.Tensor, y: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """mean(sqrt((x - y)^2 + eps^2)): a differentiable L1."""
    return torch.sqrt((x - y).square() + eps * eps).mean()


PIXEL_LOSSES = {"l1": F.l1_loss, "l2": F.mse_loss, "charbonnier": charbonnier_loss}


def pixel_loss(x: torch.Tensor, y: torch.Tensor, kind: str) -> torch.Tensor:
    try:
        fn = PIXEL_LOSSES[kind]
    except KeyError:
        raise ValueError(f"pixel loss {kind!r} unknown; use {', '.join(PIXEL_LOSSES)}") from None
    return fn(x, y)


def pixel_kd_loss(
    student: torch.Tensor,
    target: torch.Tensor,
    teacher: torch.Tensor | None,
    alpha: float,
    kind: str = "l2",
) -> torch.Tensor:
    """(1 - alpha) * L(student, target) + alpha * L(student, teacher) for image outputs."""
    check_same_shape(student, target, "pixel_kd target")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    loss = student.new_zeros(())
    if alpha < 1:
        loss = loss + (1.0 - alpha) * pixel_loss(student, target, kind)
    if alpha > 0:
        if teacher is None:
            raise ValueError("pixel_kd with alpha > 0 needs the teacher output")
        check_same_shape(student, teacher, "pixel_kd")
        loss = loss + alpha * pixel_loss(student, teacher, kind)
    return loss


def spatial_map(feature: torch.Tensor, power: int = 2) -> torch.Tensor:
    """Channel-pooled map mean_c |f|^p of an (N, C, H, W) or (N, C) feature: (N, H, W)."""
    if feature.dim() == 2:
        return feature.abs().pow(power).unsqueeze(-1).unsqueeze(-1)
    if feature.dim() != 4:
        raise ShapeMismatchError(
            f"attention maps need (N, C, H, W) or (N, C) features, got {tuple(feature.shape)}"
        )
    return feature.abs().pow(power).mean(1)


def resize_map(spatial: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinearly resize (N, H, W) maps to ``size`` (no-op when already that size)."""
    if tuple(spatial.shape[-2:]) == tuple(size):
        return spatial
    return F.interpolate(spatial.unsqueeze(1), size=size, mode="bilinear", align_corners=False)[
        :, 0
    ]


def attention_map(feature: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Zagoruyko & Komodakis' attention: L2-normalised, flattened mean_c f^2, (N, H*W)."""
    spatial = spatial_map(feature)
    if size is not None:
        spatial = resize_map(spatial, size)
    return F.normalize(spatial.flatten(1), dim=1)


def attention_transfer_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of the attention maps (student resized to the teacher's)."""
    if student.shape[0] != teacher.shape[0]:
        raise ShapeMismatchError(
            f"attention transfer: batch sizes differ ({student.shape[0]} vs {teacher.shape[0]})"
        )
    size = tuple(spatial_map(teacher).shape[-2:])
    return (attention_map(student, size) - attention_map(teacher)).square().mean()


def feature_mse_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """MSE between a (projected) student feature and a teacher feature, the student resized."""
    if student.dim() == 4 and tuple(student.shape[-2:]) != tuple(teacher.shape[-2:]):
        student = F.interpolate(
            student, size=teacher.shape[-2:], mode="bilinear", align_corners=False
        )
    check_same_shape(student, teacher, "feature_mse")
    return F.mse_loss(student, teacher)
