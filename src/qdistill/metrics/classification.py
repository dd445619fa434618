"""Classification quality: top-1 accuracy (percent) and cross-entropy loss."""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn


def top1_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Percentage of rows whose arg-max equals the label."""
    if len(labels) == 0:
        raise ValueError("accuracy of an empty batch is undefined")
    return 100.0 * (logits.argmax(dim=1) == labels).float().mean().item()


@torch.no_grad()
def evaluate_classifier(
    model: nn.Module, batches: Iterable, device: torch.device | str | None = None
) -> dict[str, float]:
    """Accuracy (%) and mean cross-entropy of ``model`` in eval mode over ``batches``."""
    was_training = model.training
    model.eval()
    correct, loss_sum, count = 0, 0.0, 0
    try:
        for x, y in batches:
            if device is not None:
                x, y = x.to(device), y.to(device)
            logits = model(x)
            loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(dim=1) == y).sum().item()
            count += len(y)
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("cannot evaluate on an empty dataset")
    return {"acc": 100.0 * correct / count, "loss": loss_sum / count, "n": count}
