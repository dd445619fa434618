"""The one training loop: forward, loss, backward, hooks, step; per-epoch validation.

Every method (plain training, QAT, distillation, QKD's phases) goes through :func:`fit`;
what differs is the ``loss_fn`` and the hooks, never a copy of the loop.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable, Iterable, Sequence, Sized
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from qdistill.console import console, progress_bar
from qdistill.data.base import UNLABELLED
from qdistill.errors import ConfigError, DivergenceError, NonFiniteLossError
from qdistill.quant import is_quantized
from qdistill.train.checkpoint import save_checkpoint
from qdistill.train.config import TrainConfig
from qdistill.train.optim import build_optimizer, lr_factor

LossFn = Callable[[nn.Module, Any], torch.Tensor]
HOOK_NAMES = ("after_backward", "on_epoch_end")
# A loss this many times above its first value (or above 1, when it started lower) means
# training has diverged: no schedule or quantizer step legitimately multiplies it so.
EXPLOSION = 1000.0
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def labelled_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the samples that have a label (0 when none has)."""
    labelled = labels != UNLABELLED
    if bool(labelled.all()):
        return F.cross_entropy(logits, labels)
    total = F.cross_entropy(logits, labels, reduction="sum", ignore_index=UNLABELLED)
    return total / labelled.sum().clamp_min(1)


def classification_loss(model: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    """Cross-entropy of ``model`` on an (x, y) or (x, y, sample index) batch."""
    x, y = batch[0], batch[1]
    return labelled_cross_entropy(model(x), y)


@dataclass
class TrainResult:
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None
    best_score: float | None = None
    wall_s: float = 0.0


def _to_device(batch: Any, device: torch.device | None) -> Any:
    if device is None:
        return batch
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (tuple, list)):
        return type(batch)(_to_device(b, device) for b in batch)
    return batch


def fit(
    model: nn.Module,
    train_batches: Iterable,
    config: TrainConfig,
    *,
    loss_fn: LossFn = classification_loss,
    evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
    monitor: str = "val_acc",
    hooks: dict[str, list[Callable]] | None = None,
    checkpoint_dir: str | Path | None = None,
    checkpoint_metadata: dict[str, Any] | None = None,
    device: torch.device | str | None = None,
    desc: str = "train",
    quiet: bool = False,
    also_train: Sequence[nn.Module] = (),
) -> TrainResult:
    """Train ``model`` in place for ``config.epochs`` epochs.

    ``evaluate(model)`` returns validation metrics after each epoch; the epoch with
    the highest ``monitor`` value is kept (and restored at the end when
    ``config.restore_best``). Hooks: ``after_backward(model, step)`` runs between
    backward and the optimiser step (e.g. pruning regularisers), ``on_epoch_end(model,
    epoch, metrics)`` after validation. With ``checkpoint_dir``, ``last.safetensors``
    is written every epoch and ``best.safetensors`` whenever the monitor improves.
    A NaN or infinite loss stops training with :class:`NonFiniteLossError`, one that
    explodes (EXPLOSION times its start) with :class:`DivergenceError`.
    ``also_train`` modules (a co-studying teacher, learnable distillation terms) are
    optimised alongside ``model`` with the same optimiser and kept in train mode.
    """
    hooks = hooks or {}
    unknown = set(hooks) - set(HOOK_NAMES)
    if unknown:
        raise ValueError(f"unknown hook(s) {sorted(unknown)}; known: {HOOK_NAMES}")
    result = TrainResult()
    if config.epochs == 0:
        return result
    steps_per_epoch = len(train_batches) if isinstance(train_batches, Sized) else None
    if steps_per_epoch == 0:
        raise ValueError("training data is empty")
    trained = nn.ModuleList([model, *also_train]) if also_train else model
    optimizer = build_optimizer(trained, config.optimizer)
    steps = _Steps(
        model,
        trained,
        optimizer,
        [group["lr"] for group in optimizer.param_groups],
        config,
        loss_fn,
        hooks.get("after_backward", []),
        torch.device(device) if device is not None else None,
        desc,
    )
    best_state: dict[str, torch.Tensor] | None = None
    checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir else None
    started = time.perf_counter()
    with progress_bar() as progress:
        bar = progress.add_task(desc, total=steps_per_epoch, status="")
        for epoch in range(config.epochs):
            epoch_start = time.perf_counter()
            progress.reset(bar, total=steps_per_epoch, description=f"{desc} {epoch + 1}")
            record = steps.epoch(epoch, train_batches, steps_per_epoch, progress, bar)
            if evaluate is not None:
                record.update(evaluate(model))
            record["epoch_s"] = time.perf_counter() - epoch_start
            result.history.append(record)
            improved = _improved(record.get(monitor), result.best_score)
            if improved or evaluate is None:
                result.best_epoch, result.best_score = epoch + 1, record.get(monitor)
                if config.restore_best:
                    best_state = copy.deepcopy(model.state_dict())
            if checkpoint_dir is not None:
                meta = {**(checkpoint_metadata or {}), "epoch": epoch + 1, "metrics": record}
                save_checkpoint(checkpoint_dir / "last.safetensors", model, meta)
                if improved:
                    save_checkpoint(checkpoint_dir / "best.safetensors", model, meta)
            for hook in hooks.get("on_epoch_end", ()):
                hook(model, epoch + 1, record)
            if not quiet:
                console.print(_epoch_line(desc, config.epochs, record, improved))
    if best_state is not None:
        model.load_state_dict(best_state)
    result.wall_s = time.perf_counter() - started
    return result


@dataclass
class _Steps:
    """The optimisation steps of one fit() call, an epoch at a time."""

    model: nn.Module
    trained: nn.Module  # the model and anything trained alongside it
    optimizer: torch.optim.Optimizer
    base_lrs: list[float]
    config: TrainConfig
    loss_fn: LossFn
    after_backward: list[Callable]
    device: torch.device | None
    desc: str
    start_loss: float | None = None  # the first step's, for the divergence check

    def __post_init__(self) -> None:
        precision = self.config.precision
        if precision != "fp32" and is_quantized(self.model):
            raise ConfigError(
                f"{self.desc}: precision {precision} is for float training; a model with "
                "fake quantizers trains in fp32 (remove precision from its train settings)"
            )
        self.device_type = next(self.trained.parameters()).device.type
        # fp16's narrow range needs the loss scaled up, and gradients unscaled before a step
        self.scaler = torch.amp.GradScaler(self.device_type) if precision == "fp16" else None

    def _autocast(self) -> contextlib.AbstractContextManager:
        dtype = AUTOCAST_DTYPES.get(self.config.precision)
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=dtype)

    def _backward(self, loss: torch.Tensor) -> None:
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def _step(self) -> None:
        """Clip (on true gradients), step, and clear the gradients."""
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        if self.config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.trained.parameters(), self.config.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)  # skipped when a gradient overflowed
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def _check_loss(self, loss: float, epoch: int, step: int, lr: float) -> None:
        """Stop on a NaN/inf loss, or one EXPLOSION times above where it started."""
        where = f"at epoch {epoch + 1} step {step + 1}"
        if not math.isfinite(loss):
            raise NonFiniteLossError(
                f"{self.desc}: loss became {loss} {where}; lower the learning rate "
                f"(now {lr:.3g}) or check the data for NaN/inf values"
            )
        if self.start_loss is None:
            self.start_loss = loss
        elif loss > EXPLOSION * max(self.start_loss, 1.0):
            raise DivergenceError(
                f"{self.desc}: training diverged, the loss exploded to {loss:.3g} {where} "
                f"(it started at {self.start_loss:.3g}); lower the learning rate (now "
                f"{lr:.3g}) or set grad_clip"
            )

    def epoch(
        self, epoch: int, batches: Iterable, steps_per_epoch: int | None, progress, bar
    ) -> dict[str, float]:
        """Train one pass over ``batches``; the epoch's mean loss and last learning rate."""
        config, optimizer, accumulate = self.config, self.optimizer, self.config.grad_accumulation
        self.trained.train()
        loss_sum, loss_count, step = 0.0, 0, 0
        optimizer.zero_grad(set_to_none=True)
        for step, batch in enumerate(batches):
            fraction = step / steps_per_epoch if steps_per_epoch else 0.0
            factor = lr_factor(config.schedule, config.epochs, epoch + fraction)
            for group, base in zip(optimizer.param_groups, self.base_lrs, strict=True):
                group["lr"] = base * factor
            with self._autocast():
                loss = self.loss_fn(self.model, _to_device(batch, self.device))
            loss_value = loss.item()
            self._check_loss(loss_value, epoch, step, self.base_lrs[0] * factor)
            self._backward(loss / accumulate if accumulate > 1 else loss)
            for hook in self.after_backward:
                hook(self.model, step)
            if (step + 1) % accumulate == 0:
                self._step()
            loss_sum += loss_value
            loss_count += 1
            progress.update(bar, advance=1, status=f"loss {loss_sum / loss_count:.4f}")
        if (step + 1) % accumulate != 0:
            self._step()
        return {
            "epoch": epoch + 1,
            "train_loss": loss_sum / max(loss_count, 1),
            "lr": self.base_lrs[0] * factor,
        }


def _improved(value: float | None, best: float | None) -> bool:
    if value is None or not math.isfinite(value):
        return False
    return best is None or value > best


def _epoch_line(desc: str, epochs: int, record: dict[str, float], improved: bool) -> str:
    skip = {"epoch", "epoch_s", "lr"}
    metrics = "  ".join(
        f"{key} {value:.4f}" if "loss" in key else f"{key} {value:.2f}"
        for key, value in record.items()
        if key not in skip and isinstance(value, (int, float))
    )
    mark = " *" if improved else ""
    return (
        f"  {desc} epoch {record['epoch']:>3}/{epochs}  {metrics}  lr {record['lr']:.2e}  "
        f"{record['epoch_s']:.1f}s{mark}"
    )
