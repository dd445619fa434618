"""Optimisers and learning-rate schedules built from config."""

from __future__ import annotations

import math

import torch
from torch import nn

from qdistill.train.config import OptimizerConfig, ScheduleConfig


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Trainable parameters; quantizer scales never get weight decay (it would shrink them)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if "quantizer" in name else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def build_optimizer(model: nn.Module, config: OptimizerConfig) -> torch.optim.Optimizer:
    groups = parameter_groups(model, config.weight_decay)
    if not any(group["params"] for group in groups):
        raise ValueError("model has no trainable parameters")
    if config.name == "sgd":
        nesterov = config.nesterov and config.momentum > 0
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=nesterov)
    cls = torch.optim.Adam if config.name == "adam" else torch.optim.AdamW
    return cls(groups, lr=config.lr, betas=config.betas)


def lr_factor(schedule: ScheduleConfig, epochs: int, epoch: float) -> float:
    """Multiplier of the base learning rate at fractional ``epoch`` (0 <= epoch < epochs)."""
    warmup = schedule.warmup_epochs
    if warmup > 0 and epoch < warmup:
        return max(epoch / warmup, 0.01)
    if schedule.name == "constant":
        return 1.0
    if schedule.name == "step":
        return schedule.gamma ** math.floor(epoch / schedule.step_size)
    if schedule.name == "multistep":
        return schedule.gamma ** sum(epoch >= m for m in schedule.milestones)
    span = max(epochs - warmup, 1e-9)
    progress = min(max((epoch - warmup) / span, 0.0), 1.0)
    ratio = schedule.min_lr_ratio
    return ratio + (1.0 - ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
