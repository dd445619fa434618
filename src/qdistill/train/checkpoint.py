"""Checkpoints: safetensors files with qdistill metadata; weights-only for torch files.

Nothing is ever unpickled: ``.safetensors`` is read with safetensors, and
``.pt``/``.pth``/``.bin`` files only with ``torch.load(weights_only=True)``.
Writes go to a temporary file that replaces the target only once complete, so
an interrupted save never destroys the previous checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from qdistill.errors import CheckpointError
from qdistill.paths import write_atomically

_METADATA_KEY = "qdistill"
_TORCH_SUFFIXES = (".pt", ".pth", ".bin")


def save_checkpoint(
    path: str | Path, state: nn.Module | dict[str, torch.Tensor], metadata: dict[str, Any]
) -> Path:
    """Write a safetensors checkpoint of ``state`` with JSON ``metadata``, atomically."""
    path = Path(path)
    state_dict = state.state_dict() if isinstance(state, nn.Module) else state
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state_dict.items()}
    header = {_METADATA_KEY: json.dumps(metadata, default=str)}
    return write_atomically(path, lambda tmp: save_file(tensors, str(tmp), metadata=header))


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read (state dict, metadata) from a safetensors or weights-only torch file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    if path.suffix in _TORCH_SUFFIXES:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:
            raise CheckpointError(
                f"checkpoint {path} is corrupt or not a weights-only torch file: "
                f"{str(err).splitlines()[0]}"
            ) from None
        if not isinstance(state, dict) or not all(
            isinstance(v, torch.Tensor) for v in state.values()
        ):
            raise CheckpointError(f"checkpoint {path} does not hold a plain state dict of tensors")
        return state, {}
    try:
        state = load_file(str(path))
        with open(path, "rb") as handle:
            header_len = int.from_bytes(handle.read(8), "little")
            header = json.loads(handle.read(header_len))
        metadata = json.loads(header.get("__metadata__", {}).get(_METADATA_KEY, "{}"))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not a safetensors file ({err}); "
            "re-create it with 'qdistill train' or point to another file"
        ) from None
    return state, metadata


def check_state_fits(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Raise one CheckpointError line unless ``state`` has exactly ``model``'s tensor names
    and shapes (``model`` may live on the meta device)."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [k for k in own if k in state and own[k].shape != state[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing {missing[:4]}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:4]}")
        if shapes:
            k = shapes[0]
            parts.append(
                f"shape of {k!r} is {tuple(state[k].shape)}, model has {tuple(own[k].shape)}"
            )
        raise CheckpointError(
            f"checkpoint {source} does not fit the model: {'; '.join(parts)}; "
            "check the model name and options it was trained with"
        )


def load_state_into(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Load ``state`` into ``model``, explaining any mismatch in one line."""
    check_state_fits(model, state, source)
    model.load_state_dict(state)
