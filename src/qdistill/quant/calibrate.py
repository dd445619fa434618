"""Post-training calibration: observe activation ranges on a few batches, no training."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from contextlib import contextmanager

import torch
from torch import nn

from qdistill.errors import ConfigError, DatasetError
from qdistill.quant.modules import iter_quantizers


@contextmanager
def calibration_mode(model: nn.Module):
    """Eval mode, activation quantizers observing the float activations (fake quant off)."""
    was_training = model.training
    quantizers = [q for _, q in iter_quantizers(model) if q.role == "act"]
    model.eval()
    for q in quantizers:
        q.calibrating, q.fake_quant_enabled = True, False
    try:
        yield
    finally:
        for q in quantizers:
            q.calibrating, q.fake_quant_enabled = False, True
        model.train(was_training)


def feed_batches(
    model: nn.Module,
    batches: Iterable,
    num_batches: int | None = None,
    device: torch.device | str | None = None,
) -> int:
    """Run up to ``num_batches`` batches (inputs, or (inputs, ...) tuples) through
    ``model`` without gradients, for what its hooks and observers record; return how
    many ran."""
    seen = 0
    with torch.no_grad():
        for batch in itertools.islice(batches, num_batches):
            inputs = batch[0] if isinstance(batch, (tuple, list)) else batch
            model(inputs.to(device) if device is not None else inputs)
            seen += 1
    return seen


def calibrate(
    model: nn.Module,
    batches: Iterable,
    num_batches: int | None = None,
    device: torch.device | str | None = None,
) -> int:
    """Run up to ``num_batches`` batches (inputs, or (inputs, ...) tuples) through ``model``.

    Returns the number of batches used. Raises if some activation quantizer saw no
    data (a layer the forward pass never reached) or a NaN or infinite value.
    """
    if num_batches is not None and num_batches < 1:
        raise ConfigError(f"calibration needs at least one batch, got {num_batches}")
    with calibration_mode(model):
        seen = feed_batches(model, batches, num_batches, device)
    if seen == 0:
        raise ConfigError("calibration data is empty; give at least one batch")
    missing = [name for name, q in iter_quantizers(model) if not q.is_ready]
    if missing:
        raise ConfigError(
            f"calibration never reached quantizer(s) {missing[:5]}; "
            "are those layers used in forward()?"
        )
    non_finite = [
        name
        for name, q in iter_quantizers(model)
        if q.role == "act" and not bool(torch.isfinite(q.scale).all())
    ]
    if non_finite:
        raise DatasetError(
            f"calibration gave quantizer(s) {non_finite[:5]} a NaN or infinite range: the "
            "calibration inputs, or the activations the model computes from them, hold NaN "
            "or inf; clean the data (or fix the float model) and calibrate again"
        )
    return seen
