"""Perceptual image quality: HaarPSI (piq, training-free, always measured) and LPIPS
(the ``lpips`` package) when the AlexNet backbone weights exist locally.

LPIPS needs ImageNet-trained AlexNet features, which qdistill never downloads. Point
``lpips_weights`` (or the environment variable QDISTILL_LPIPS_WEIGHTS) at a torchvision
AlexNet state dict (e.g. ``alexnet-owt-7be5be79.pth``, full model or ``features`` only);
it is read weights-only. Without it LPIPS is reported as unavailable with the reason.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from torch import nn

LPIPS_ENV = "QDISTILL_LPIPS_WEIGHTS"


def haarpsi(prediction: torch.Tensor, target: torch.Tensor) -> float:
    """HaarPSI similarity in [0, 1] (1 = identical; Reisenhofer et al. 2018) of one pair."""
    import piq

    return float(piq.haarpsi(prediction.clamp(0, 1), target.clamp(0, 1), data_range=1.0))


@dataclass(frozen=True)
class LPIPS:
    """An LPIPS metric, or the reason it is unavailable (``model`` None)."""

    model: nn.Module | None
    reason: str

    @property
    def available(self) -> bool:
        return self.model is not None

    @torch.no_grad()
    def __call__(self, prediction: torch.Tensor, target: torch.Tensor) -> float:
        """LPIPS distance (lower is better) of one pair of images in [0, 1]."""
        if self.model is None:
            raise RuntimeError(f"LPIPS is unavailable: {self.reason}")
        if prediction.shape[1] == 1:  # Y images: the backbone takes three channels
            prediction, target = prediction.expand(-1, 3, -1, -1), target.expand(-1, 3, -1, -1)
        p, t = prediction.clamp(0, 1) * 2 - 1, target.clamp(0, 1) * 2 - 1
        return float(self.model(p.float(), t.float()).mean())


def lpips_metric(weights: str | Path | None = None) -> LPIPS:
    """LPIPS with the AlexNet weights at ``weights`` (or $QDISTILL_LPIPS_WEIGHTS)."""
    source = weights or os.environ.get(LPIPS_ENV)
    if not source:
        return LPIPS(
            None,
            f"no AlexNet weights given (set lpips_weights or ${LPIPS_ENV} to a torchvision "
            "alexnet state dict; nothing is downloaded)",
        )
    path = Path(source).expanduser()
    if not path.is_file():
        return LPIPS(None, f"AlexNet weights {path} do not exist")
    try:
        import lpips  # noqa: F401
    except ImportError:
        return LPIPS(None, "the lpips package is not installed")
    stat = path.stat()
    return _load_lpips(str(path), stat.st_mtime_ns)


@lru_cache(maxsize=4)
def _load_lpips(path: str, _mtime_ns: int) -> LPIPS:
    import warnings

    import lpips

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        return LPIPS(None, f"cannot read AlexNet weights {path} weights-only: {err}")
    if not isinstance(state, dict):
        return LPIPS(None, f"{path} holds a {type(state).__name__}, not a state dict")
    features = {k.removeprefix("features."): v for k, v in state.items() if "classifier" not in k}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torchvision's 'pretrained' deprecation inside lpips
        model = lpips.LPIPS(net="alex", pnet_rand=True, verbose=False)
    trunk = {}
    for slice_name, block in model.net.named_children():
        for index, _ in block.named_children():
            for param in ("weight", "bias"):
                key = f"{index}.{param}"
                if key in features:
                    trunk[f"{slice_name}.{index}.{param}"] = features.pop(key)
    expected = {n for n, _ in model.net.named_parameters()}
    missing = sorted(expected - set(trunk))
    if missing or features:
        return LPIPS(
            None,
            f"{path} is not an AlexNet state dict: missing {missing[:3]}, unexpected "
            f"{sorted(features)[:3]}",
        )
    try:
        model.net.load_state_dict(trunk)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[-1].strip()
        return LPIPS(None, f"{path} does not fit AlexNet: {first}")
    return LPIPS(model.eval(), f"AlexNet weights {path}")
