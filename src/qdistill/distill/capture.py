"""Capture intermediate features by module path with forward hooks (no model edits)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from qdistill.errors import ConfigError


def resolve_module(model: nn.Module, path: str, role: str) -> nn.Module:
    """``model.get_submodule(path)`` with an error that lists nearby module names."""
    try:
        return model.get_submodule(path)
    except AttributeError:
        names = [n for n, _ in model.named_modules() if n]
        shown = ", ".join(names[:15]) + (" ..." if len(names) > 15 else "")
        raise ConfigError(f"{role} has no module {path!r}; its modules are: {shown}") from None


class FeatureCapture:
    """Records the outputs of the named submodules on every forward pass.

    Use as a context manager; ``features[path]`` holds the latest output of each path.
    Hooks are removed on exit.
    """

    def __init__(self, model: nn.Module, paths: Iterable[str], role: str = "model") -> None:
        self.paths = list(dict.fromkeys(paths))
        self.features: dict[str, torch.Tensor] = {}
        self._modules = {path: resolve_module(model, path, role) for path in self.paths}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> FeatureCapture:
        for path, module in self._modules.items():
            self._handles.append(module.register_forward_hook(self._hook(path)))
        return self

    def _hook(self, path: str):
        def record(_module, _inputs, output):
            self.features[path] = output

        return record

    def __exit__(self, *exc) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.features.clear()

    def take(self) -> dict[str, torch.Tensor]:
        """The features of the last forward pass (and forget them)."""
        missing = [p for p in self.paths if p not in self.features]
        if missing:
            raise ConfigError(f"modules {missing} did not run in the forward pass")
        features, self.features = self.features, {}
        return features
