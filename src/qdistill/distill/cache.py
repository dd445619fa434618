"""Teacher outputs for a fixed dataset: computed once, looked up by sample index.

A cache is keyed by a fingerprint of the teacher's weights, the inputs of the
split and the augmentation in use, so a changed teacher or data set never reads
stale outputs. Augmentation that changes inputs every epoch makes caching
impossible; :func:`cache_disabled_reason` says why, for the log.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from qdistill.console import console
from qdistill.data.base import ArraySplit
from qdistill.paths import write_atomically


def tensor_digest(tensors: list[torch.Tensor]) -> str:
    digest = hashlib.sha256()
    for tensor in tensors:
        t = tensor.detach().cpu().contiguous()
        digest.update(str((tuple(t.shape), str(t.dtype))).encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()[:16]


def cache_key(teacher: nn.Module, split: ArraySplit, augmentation: str = "none") -> str:
    weights = tensor_digest(list(teacher.state_dict().values()))
    data = tensor_digest([split.x, split.y])
    return hashlib.sha256(f"{weights}|{data}|{augmentation}".encode()).hexdigest()[:16]


def cache_disabled_reason(augmentation: str, needs_features: bool) -> str | None:
    """Why outputs cannot be cached (None when they can)."""
    if augmentation != "none":
        return f"augmentation ({augmentation}) changes the inputs every epoch"
    if needs_features:
        return "feature distillation needs live teacher features"
    return None


def _read_outputs(path: Path, samples: int) -> torch.Tensor | None:
    """The cached outputs in ``path``, or None (with a warning) when the file is unreadable
    or does not hold one finite output per sample, so the caller computes them again."""
    try:
        outputs = load_file(str(path)).get("outputs")
    except (SafetensorError, OSError, ValueError) as err:
        problem = f"is unreadable ({str(err).splitlines()[0]})"
    else:
        if outputs is None or outputs.ndim == 0 or len(outputs) != samples:
            problem = f"does not hold one output per sample ({samples})"
        elif not torch.isfinite(outputs).all():
            problem = "holds NaN or infinite values"
        else:
            return outputs
    console.print(f"[yellow]warning:[/] teacher-output cache {path} {problem}; computing it again")
    return None


class TeacherOutputCache:
    """Outputs of a frozen teacher for every sample of one split."""

    def __init__(self, outputs: torch.Tensor, key: str) -> None:
        self.outputs = outputs
        self.key = key
        self.hits = 0

    @classmethod
    @torch.no_grad()
    def build(
        cls,
        teacher: nn.Module,
        split: ArraySplit,
        batch_size: int = 256,
        device: torch.device | None = None,
        directory: Path | None = None,
        augmentation: str = "none",
    ) -> TeacherOutputCache:
        """Compute (or load from ``directory``) the teacher's outputs on ``split``."""
        key = cache_key(teacher, split, augmentation)
        path = directory / f"teacher-outputs-{key}.safetensors" if directory else None
        if path is not None and path.is_file():
            outputs = _read_outputs(path, len(split))
            if outputs is not None:
                return cls(outputs.to(device or "cpu"), key)
        was_training = teacher.training
        teacher.eval()
        outputs = []
        for start in range(0, len(split), batch_size):
            x = split.x[start : start + batch_size]
            outputs.append(teacher(x.to(device) if device is not None else x).float())
        teacher.train(was_training)
        cache = cls(torch.cat(outputs), key)
        if path is not None:
            tensors = {"outputs": cache.outputs.cpu().contiguous()}
            write_atomically(path, lambda tmp: save_file(tensors, str(tmp)))
        return cache

    def lookup(self, index: torch.Tensor) -> torch.Tensor:
        self.hits += len(index)
        if index.device != self.outputs.device:
            index = index.to(self.outputs.device)
        return self.outputs.index_select(0, index)

    def matches(self, teacher: nn.Module, split: ArraySplit, augmentation: str = "none") -> bool:
        return self.key == cache_key(teacher, split, augmentation)
