"""Feature-level distillation terms as modules (registered under their YAML names).

Each term names the student and teacher module paths whose outputs it needs;
``setup`` sees one batch of those features to size any learnable parts
(projections, attention embeddings) before training starts.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from qdistill.distill.config import FeatureTermConfig
from qdistill.distill.losses import (
    attention_transfer_loss,
    feature_mse_loss,
    resize_map,
    spatial_map,
)
from qdistill.registry import Registry

FEATURE_TERMS: Registry[type[nn.Module]] = Registry("feature distillation term")

Features = dict[str, torch.Tensor]


def _channels(feature: torch.Tensor) -> int:
    return feature.shape[1]


def _pooled(feature: torch.Tensor) -> torch.Tensor:
    """(N, C) global average of an (N, C, ...) feature."""
    return feature.flatten(2).mean(2) if feature.dim() > 2 else feature


class FeatureTerm(nn.Module):
    def __init__(self, config: FeatureTermConfig) -> None:
        super().__init__()
        self.config = config

    @property
    def student_paths(self) -> list[str]:
        return [s for s, _ in self.config.pairs]

    @property
    def teacher_paths(self) -> list[str]:
        return [t for _, t in self.config.pairs]

    def setup(self, student: Features, teacher: Features) -> None:
        """Size learnable parts from one batch of features (default: nothing to size)."""


@FEATURE_TERMS.register("attention_transfer")
class AttentionTransfer(FeatureTerm):
    """Match L2-normalised spatial attention maps of each (student, teacher) pair."""

    def forward(self, student: Features, teacher: Features) -> torch.Tensor:
        losses = [attention_transfer_loss(student[s], teacher[t]) for s, t in self.config.pairs]
        return self.config.weight * torch.stack(losses).sum()


@FEATURE_TERMS.register("feature_mse")
class FeatureMSE(FeatureTerm):
    """MSE between features; a learned 1x1 projection maps student channels to the
    teacher's when they differ, and the student map is resized to the teacher's."""

    def setup(self, student: Features, teacher: Features) -> None:
        projections = []
        for s, t in self.config.pairs:
            fs, ft = student[s], teacher[t]
            if _channels(fs) == _channels(ft):
                projections.append(nn.Identity())
            elif fs.dim() == 4:
                projections.append(nn.Conv2d(_channels(fs), _channels(ft), 1, bias=False))
            else:
                projections.append(nn.Linear(_channels(fs), _channels(ft), bias=False))
        self.projections = nn.ModuleList(projections).to(next(iter(student.values())).device)

    def forward(self, student: Features, teacher: Features) -> torch.Tensor:
        losses = [
            feature_mse_loss(project(student[s]), teacher[t])
            for project, (s, t) in zip(self.projections, self.config.pairs, strict=True)
        ]
        return self.config.weight * torch.stack(losses).sum()


@FEATURE_TERMS.register("afd")
class AttentionFeatureDistillation(FeatureTerm):
    """Attention-based feature distillation over all (teacher, student) layer pairs.

    For every sample, each teacher layer attends over the student layers with
    softmax(q_t . k_s / sqrt(d)) where q and k are learned projections of the
    layers' pooled features; the loss weights the distance between the channel-
    averaged, L2-normalised maps (student resized to the teacher's) by that attention.
    """

    @property
    def student_paths(self) -> list[str]:
        return self.config.student_layers

    @property
    def teacher_paths(self) -> list[str]:
        return self.config.teacher_layers

    def setup(self, student: Features, teacher: Features) -> None:
        d = self.config.embed_dim
        device = next(iter(student.values())).device
        self.queries = nn.ModuleList(
            nn.Linear(_channels(teacher[t]), d) for t in self.config.teacher_layers
        ).to(device)
        self.keys = nn.ModuleList(
            nn.Linear(_channels(student[s]), d) for s in self.config.student_layers
        ).to(device)

    def forward(self, student: Features, teacher: Features) -> torch.Tensor:
        keys = torch.stack(
            [
                k(_pooled(student[s]))
                for k, s in zip(self.keys, self.config.student_layers, strict=True)
            ],
            1,
        )  # (N, S, d)
        total = 0.0
        for query, t in zip(self.queries, self.config.teacher_layers, strict=True):
            target = spatial_map(teacher[t])
            size = tuple(target.shape[-2:])
            target = F.normalize(target.flatten(1), dim=1)
            distances = torch.stack(
                [
                    (
                        F.normalize(resize_map(spatial_map(student[s]), size).flatten(1), dim=1)
                        - target
                    )
                    .square()
                    .mean(1)
                    for s in self.config.student_layers
                ],
                1,
            )  # (N, S)
            q = query(_pooled(teacher[t])).unsqueeze(1)  # (N, 1, d)
            attention = torch.softmax((q * keys).sum(-1) / math.sqrt(keys.shape[-1]), dim=1)
            total = total + (attention * distances).sum(1).mean()
        return self.config.weight * total


def build_term(config: FeatureTermConfig) -> FeatureTerm:
    return FEATURE_TERMS.get(config.type)(config)
